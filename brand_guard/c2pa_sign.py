"""C2PA Content Credentials for PNG outputs (optional, via the `c2pa-python` package): sign with a
configured certificate chain, read a manifest store back with its validation status."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from .errors import ProvenanceError
from .provenance import ProvenanceRecord

CLAIM_GENERATOR = "Design Studio"
PROVENANCE_LABEL = "com.designstudio.provenance"
RECORD_FORMAT = "studio-record/1"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ALGORITHMS = ("es256", "ps256", "ed25519")
# Codes that only say the signer's root is not on a trust list (a house CA, a test root): the
# signature, the data hash and the assertions may still be fully valid.
TRUST_ONLY_CODES = frozenset({"signingCredential.untrusted"})
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _c2pa() -> Any:
    """The `c2pa` module, imported only when C2PA is used."""
    try:
        import c2pa
    except ImportError as exc:
        raise ProvenanceError("C2PA signing needs the package c2pa-python; pip install 'c2pa-python>=0.38'") from exc
    return c2pa


def _check_png(png_bytes: bytes, what: str) -> None:
    if not isinstance(png_bytes, (bytes, bytearray)) or bytes(png_bytes[:8]) != _PNG_MAGIC:
        head = bytes(png_bytes[:8]) if isinstance(png_bytes, (bytes, bytearray)) else type(png_bytes).__name__
        raise ProvenanceError(f"{what}: starts with {head!r}; expected PNG bytes (C2PA signing covers PNG only)")


class C2paSigner:
    """Signs PNG bytes with a C2PA manifest using a PEM certificate chain and its private key."""

    def __init__(self, cert_chain_pem: bytes, private_key_pem: bytes, alg: str = "es256", tsa_url: str | None = None) -> None:
        alg = str(alg).lower()
        if alg not in ALGORITHMS:
            raise ProvenanceError(f"C2PA algorithm is {alg!r}; accepted: {', '.join(ALGORITHMS)}")
        if b"BEGIN CERTIFICATE" not in cert_chain_pem:
            raise ProvenanceError("C2PA certificate chain is not PEM (no 'BEGIN CERTIFICATE' block)")
        if b"PRIVATE KEY" not in private_key_pem:
            raise ProvenanceError("C2PA private key is not PEM (no 'PRIVATE KEY' block)")
        self.alg = alg
        self.tsa_url = tsa_url
        self._cert_chain = bytes(cert_chain_pem)
        self._private_key = bytes(private_key_pem)

    @classmethod
    def from_files(
        cls, cert_chain_pem_path: Path | str, private_key_pem_path: Path | str, alg: str = "es256", tsa_url: str | None = None
    ) -> "C2paSigner":
        """Load the end-entity-first PEM chain and the PEM private key from files."""
        data = []
        for label, path in (("certificate chain", cert_chain_pem_path), ("private key", private_key_pem_path)):
            path = Path(path)
            if not path.is_file():
                raise ProvenanceError(f"C2PA {label} file {path} does not exist")
            data.append(path.read_bytes())
        return cls(data[0], data[1], alg=alg, tsa_url=tsa_url)

    def _native_signer(self) -> Any:
        c2pa = _c2pa()
        info = c2pa.C2paSignerInfo(
            self.alg.encode("ascii"), self._cert_chain, self._private_key, self.tsa_url.encode("utf-8") if self.tsa_url else None
        )
        try:
            return c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"C2PA signer cannot be created from the configured certificate/key ({self.alg}): {exc}") from exc

    def manifest_definition(self, record: ProvenanceRecord) -> dict[str, Any]:
        """The manifest JSON given to the C2PA builder for `record`."""
        return {
            "claim_generator_info": [{"name": CLAIM_GENERATOR}],
            "title": f"{record.design_id}.png",
            "format": "image/png",
            "assertions": [
                {
                    "label": "c2pa.actions",
                    "data": {"actions": [{"action": "c2pa.created", "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA}]},
                },
                # The record as its canonical JSON text: the SDK's CBOR round trip turns small-int lists
                # such as [64, 64] into byte strings (with or without kind "Json"), so a dict would not
                # read back equal; the text is also exactly what the studio signs elsewhere.
                {"label": PROVENANCE_LABEL, "data": {"format": RECORD_FORMAT, "record": record.canonical_json()}},
            ],
        }

    def sign_png(self, png_bytes: bytes, record: ProvenanceRecord) -> bytes:
        """`png_bytes` with an embedded C2PA manifest (a `caBX` chunk); pixels and other chunks unchanged."""
        _check_png(png_bytes, "sign_png input")
        c2pa = _c2pa()
        signer = self._native_signer()
        try:
            builder = c2pa.Builder(self.manifest_definition(record))
            dest = io.BytesIO()
            builder.sign(signer, "image/png", io.BytesIO(bytes(png_bytes)), dest)
        except c2pa.C2paError as exc:
            raise ProvenanceError(f"C2PA signing failed for design {record.design_id}: {exc}") from exc
        finally:
            signer.close()
        return dest.getvalue()


def read_c2pa(png_bytes: bytes) -> dict | None:
    """The C2PA manifest store of a PNG as a dict (with `validation_state`, `validation_status` and, added
    here, `provenance`: the active manifest's studio record), or None when it carries no manifest."""
    _check_png(png_bytes, "read_c2pa input")
    c2pa = _c2pa()
    try:
        reader = c2pa.Reader("image/png", io.BytesIO(bytes(png_bytes)))
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__:
            return None
        # A manifest that is present but unreadable is a validation failure, not an absence.
        return {"validation_state": "Invalid", "validation_status": [{"code": "c2pa.unreadable", "explanation": str(exc)}]}
    try:
        store = json.loads(reader.json())
    finally:
        reader.close()
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    data = next((a.get("data") for a in active.get("assertions", []) if a.get("label") == PROVENANCE_LABEL), None)
    try:
        store["provenance"] = json.loads(data["record"]) if isinstance(data, dict) and isinstance(data.get("record"), str) else None
    except ValueError:
        store["provenance"] = None
    return store


def c2pa_errors(store: dict) -> list[str]:
    """Failure codes of a manifest store other than the trust-list ones (empty: signature and hashes hold)."""
    return [s.get("code", "?") for s in store.get("validation_status") or [] if s.get("code") not in TRUST_ONLY_CODES]


def c2pa_summary(png_bytes: bytes) -> tuple[str, str]:
    """('absent' | 'valid' | 'invalid', one line) for a PNG; 'valid' allows an untrusted (house) root."""
    store = read_c2pa(png_bytes)
    if store is None:
        return "absent", "no C2PA manifest"
    errors = c2pa_errors(store)
    if errors:
        return "invalid", f"C2PA manifest fails validation: {', '.join(errors)}"
    trusted = not any(s.get("code") in TRUST_ONLY_CODES for s in store.get("validation_status") or [])
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    issuer = (active.get("signature_info") or {}).get("issuer", "?")
    return "valid", f"C2PA manifest present and valid (signed by {issuer}; {'trusted' if trusted else 'root not on a trust list'})"
