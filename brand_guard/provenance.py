"""Provenance on every output: PNG text chunks, glTF `asset.extras`, a crop-proof watermark on PNGs and GLB
textures, and an Ed25519-signed manifest beside the file; `verify_file` says valid / tampered / unknown."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import stat
import struct
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from PIL import Image, PngImagePlugin

from . import watermark
from .canonical import canonical_bytes, canonical_json, sha256_hex
from .errors import InsecureKeyFile, ProvenanceError
from .fsutil import atomic_write_bytes

PNG_RECORD_KEY = "studio:provenance"
PNG_PIXEL_KEY = "studio:pixel_sha256"
PNG_WATERMARK_KEY = "studio:watermark"
PNG_SIGNATURE_KEY = "studio:signature"
PNG_PUBLIC_KEY = "studio:public_key"
GLB_EXTRAS_KEY = "studio_provenance"
MANIFEST_SUFFIX = ".manifest.json"
MANIFEST_FORMAT = "studio-manifest/1"
PRIVATE_KEY_FILE = "studio_ed25519.pem"
WATERMARK_MIN_SIDE = watermark.MIN_SIDE
WATERMARK_SCHEME = "tiled-spread-spectrum/1"


# --------------------------------------------------------------------------- record


@dataclass
class ProvenanceRecord:
    """Who made an output, when, and from what."""

    design_id: str
    actor: str
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    model: str = ""
    revision: str = ""
    adapters: list[str] = field(default_factory=list)
    parents: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    kind: str = "concept"
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def __post_init__(self) -> None:
        if not isinstance(self.design_id, str) or not self.design_id:
            raise ProvenanceError(f"design_id is {self.design_id!r}; expected a non-empty string")
        if not isinstance(self.actor, str) or not self.actor:
            raise ProvenanceError(f"actor is {self.actor!r}; expected a non-empty string")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (lists and dicts copied)."""
        return json.loads(canonical_json(asdict(self)))

    def canonical_json(self) -> str:
        """Sorted-key compact JSON: the bytes stored in files and signed."""
        return canonical_json(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ProvenanceRecord":
        """Build from `to_dict()` output; unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ProvenanceError(f"provenance record has unknown fields {sorted(unknown)}; accepted: {sorted(names)}")
        return cls(**dict(data))


# --------------------------------------------------------------------------- keys


class StudioKeys:
    """The studio's Ed25519 signing key (PEM, 0600, in a key dir that is not the data dir)."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private = private_key
        self.public_key = private_key.public_key()

    @classmethod
    def load_or_create(cls, key_dir: Path | str) -> "StudioKeys":
        """Load `key_dir/studio_ed25519.pem`, creating a new key (0600, dir 0700) when absent."""
        key_dir = Path(key_dir)
        path = key_dir / PRIVATE_KEY_FILE
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise InsecureKeyFile(f"signing key {path} has permissions {mode:04o}; expected 0600 (chmod 600 {path})")
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ProvenanceError(f"signing key {path} is {type(key).__name__}; expected an Ed25519 private key")
            return cls(key)
        key_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(key_dir, 0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        atomic_write_bytes(path, pem, mode=0o600)
        return cls(key)

    @classmethod
    def generate(cls) -> "StudioKeys":
        """An in-memory key (tests, benchmarks)."""
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key_b64(self) -> str:
        """Raw 32-byte public key, base64."""
        raw = self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")

    @property
    def key_id(self) -> str:
        """Short fingerprint of the public key (first 16 hex of its SHA-256)."""
        return sha256_hex(base64.b64decode(self.public_key_b64))[:16]

    def sign(self, data: bytes) -> str:
        """Ed25519 signature of `data`, base64."""
        return base64.b64encode(self._private.sign(data)).decode("ascii")


def public_key_b64(key: Any) -> str:
    """Normalise a trusted key given as StudioKeys, Ed25519PublicKey, raw bytes or base64 text."""
    if isinstance(key, StudioKeys):
        return key.public_key_b64
    if isinstance(key, Ed25519PublicKey):
        return base64.b64encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    if isinstance(key, (bytes, bytearray)) and len(key) == 32:
        return base64.b64encode(bytes(key)).decode("ascii")
    if isinstance(key, str):
        return key.strip()
    raise ProvenanceError(f"trusted key of type {type(key).__name__}; expected StudioKeys, Ed25519PublicKey, 32 bytes or base64 text")


def verify_signature(public_b64: str, signature_b64: str, data: bytes) -> bool:
    """True when `signature_b64` is a valid Ed25519 signature of `data` by `public_b64`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_b64))
        key.verify(base64.b64decode(signature_b64), data)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


# --------------------------------------------------------------------------- pixels and watermark


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 over mode, size and decoded pixel bytes (same definition as the vault's)."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode("ascii"))
    digest.update(image.tobytes())
    return digest.hexdigest()


def watermark_payload(design_id: str) -> str:
    """The 32-bit id (8 hex characters) that the watermark of `design_id` carries."""
    return watermark.payload_for(design_id)


def embed_watermark(image: Image.Image, design_id: str) -> tuple[Image.Image, str | None]:
    """Return (watermarked image, None) or (the image unchanged, reason it was skipped)."""
    if min(image.size) < WATERMARK_MIN_SIDE:
        return image, f"image {image.width}x{image.height} is smaller than {WATERMARK_MIN_SIDE} px on a side"
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGB")
    return watermark.embed(image, design_id), None


def detect_watermark(image: Image.Image) -> str | None:
    """The 32-bit design-id hash (8 hex) carried by the watermark, or None when none is found.

    The reader searches scale and offset, so crops, resizes and re-encodings of a marked output are
    still read (see `brand_guard.watermark`)."""
    return watermark.detect(image)


def watermark_survival(
    images: Sequence[Image.Image],
    transforms: Mapping[str, Callable[[Image.Image], Image.Image]],
    design_ids: Sequence[str] | None = None,
) -> dict[str, float]:
    """Fraction of watermarked `images` whose payload is still read after each transform (plus 'none')."""
    ids = list(design_ids) if design_ids is not None else [f"bench-{i:05d}" for i in range(len(images))]
    marked = [embed_watermark(img.convert("RGB"), did)[0] for img, did in zip(images, ids)]
    results: dict[str, float] = {}
    for name, fn in {"none": lambda im: im, **dict(transforms)}.items():
        hits = sum(detect_watermark(fn(img)) == watermark_payload(did) for img, did in zip(marked, ids))
        results[name] = hits / max(len(marked), 1)
    return results


# --------------------------------------------------------------------------- PNG


def stamp_png(image: Image.Image, record: ProvenanceRecord, keys: StudioKeys, watermark: bool = True) -> bytes:
    """PNG bytes carrying the watermark (when the image is large enough), the record, the pixel hash
    and a signature over both."""
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    wm_info: dict[str, Any]
    if watermark:
        image, skipped = embed_watermark(image, record.design_id)
        wm_info = {"scheme": WATERMARK_SCHEME, "payload": watermark_payload(record.design_id)}
        if skipped:
            wm_info = {"scheme": None, "skipped": skipped}
    else:
        wm_info = {"scheme": None, "skipped": "watermark=False"}
    pix = pixel_sha256(image)
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PNG_RECORD_KEY, record.canonical_json())
    info.add_text(PNG_PIXEL_KEY, pix)
    info.add_itxt(PNG_WATERMARK_KEY, canonical_json(wm_info))
    info.add_text(PNG_PUBLIC_KEY, keys.public_key_b64)
    info.add_text(PNG_SIGNATURE_KEY, keys.sign(_embedded_signed_bytes(record.to_dict(), pix)))
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def _embedded_signed_bytes(record: dict, pix: str) -> bytes:
    return canonical_bytes({"format": "studio-png/1", "record": record, "pixel_sha256": pix})


def read_png_provenance(data: bytes) -> tuple[dict[str, str], Image.Image]:
    """The studio text chunks of a PNG and its decoded image."""
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        text = {k: v for k, v in getattr(im, "text", {}).items() if k.startswith("studio:")}
        return text, im.copy()


# --------------------------------------------------------------------------- GLB

_GLB_MAGIC = b"glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942


def _parse_glb(data: bytes) -> tuple[dict, list[tuple[int, bytes]]]:
    if len(data) < 20 or data[:4] != _GLB_MAGIC:
        raise ProvenanceError(f"GLB: header {data[:4]!r}; expected b'glTF'")
    _, version, length = struct.unpack_from("<4sII", data, 0)
    if version != 2:
        raise ProvenanceError(f"GLB: version {version}; expected 2")
    if length != len(data):
        raise ProvenanceError(f"GLB: header length {length} but {len(data)} bytes present")
    chunks: list[tuple[int, bytes]] = []
    offset = 12
    while offset < length:
        if offset + 8 > length:
            raise ProvenanceError(f"GLB: truncated chunk header at byte {offset}")
        chunk_len, chunk_type = struct.unpack_from("<II", data, offset)
        body = data[offset + 8 : offset + 8 + chunk_len]
        if len(body) != chunk_len:
            raise ProvenanceError(f"GLB: chunk at byte {offset} claims {chunk_len} bytes, {len(body)} present")
        chunks.append((chunk_type, body))
        offset += 8 + chunk_len
    if not chunks or chunks[0][0] != _CHUNK_JSON:
        raise ProvenanceError("GLB: first chunk is not JSON")
    try:
        gltf = json.loads(chunks[0][1].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProvenanceError(f"GLB: JSON chunk is not valid JSON: {exc}") from exc
    return gltf, chunks[1:]


def _build_glb(gltf: dict, rest: list[tuple[int, bytes]]) -> bytes:
    body = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    body += b" " * (-len(body) % 4)  # JSON chunk pads with spaces
    parts = [struct.pack("<II", len(body), _CHUNK_JSON), body]
    for chunk_type, chunk in rest:
        chunk += (b"\x00" if chunk_type == _CHUNK_BIN else b" ") * (-len(chunk) % 4)
        parts += [struct.pack("<II", len(chunk), chunk_type), chunk]
    payload = b"".join(parts)
    return struct.pack("<4sII", _GLB_MAGIC, 2, 12 + len(payload)) + payload


def glb_images(glb_bytes: bytes) -> list[tuple[int, bytes]]:
    """(image index, encoded bytes) of every image stored inside a GLB's binary chunk."""
    gltf, rest = _parse_glb(glb_bytes)
    binary = next((chunk for kind, chunk in rest if kind == _CHUNK_BIN), b"")
    views = gltf.get("bufferViews", [])
    found = []
    for index, image in enumerate(gltf.get("images", [])):
        view = image.get("bufferView")
        if isinstance(view, int) and 0 <= view < len(views):
            start = int(views[view].get("byteOffset", 0))
            found.append((index, binary[start : start + int(views[view]["byteLength"])]))
    return found


def _mark_glb_textures(gltf: dict, rest: list[tuple[int, bytes]], design_id: str) -> list[tuple[int, bytes]]:
    """Watermark every embedded texture large enough to carry the mark; re-pack the binary chunk."""
    bin_index = next((i for i, (kind, _) in enumerate(rest) if kind == _CHUNK_BIN), None)
    views = gltf.get("bufferViews", [])
    if bin_index is None or not views or any(v.get("buffer", 0) != 0 for v in views) or len(gltf.get("buffers", [])) != 1:
        return rest
    binary = rest[bin_index][1]
    blobs = [binary[int(v.get("byteOffset", 0)) : int(v.get("byteOffset", 0)) + int(v["byteLength"])] for v in views]
    changed = False
    for image in gltf.get("images", []):
        view = image.get("bufferView")
        if not isinstance(view, int) or not 0 <= view < len(views):
            continue
        try:
            with Image.open(io.BytesIO(blobs[view])) as texture:
                texture.load()
                fmt = texture.format
                texture = texture.copy()
        except OSError:
            continue
        marked, skipped = embed_watermark(texture, design_id)
        if skipped:
            continue
        buf = io.BytesIO()
        if fmt == "JPEG":
            marked.convert("RGB").save(buf, format="JPEG", quality=95)
        else:
            marked.save(buf, format="PNG")
        blobs[view] = buf.getvalue()
        changed = True
    if not changed:
        return rest
    packed = bytearray()
    for view, blob in zip(views, blobs):
        packed += b"\x00" * (-len(packed) % 8)  # keeps every accessor's component alignment
        view["byteOffset"] = len(packed)
        view["byteLength"] = len(blob)
        packed += blob
    packed += b"\x00" * (-len(packed) % 4)
    gltf["buffers"][0]["byteLength"] = len(packed)
    rest = list(rest)
    rest[bin_index] = (_CHUNK_BIN, bytes(packed))
    return rest


def stamp_glb(glb_bytes: bytes, record: ProvenanceRecord, watermark: bool = True) -> bytes:
    """GLB bytes with `record` in the glTF `asset.extras.studio_provenance` and, with `watermark`, the
    design's mark in every embedded texture of at least WATERMARK_MIN_SIDE pixels a side."""
    gltf, rest = _parse_glb(glb_bytes)
    if watermark:
        rest = _mark_glb_textures(gltf, rest, record.design_id)
    asset = gltf.setdefault("asset", {"version": "2.0"})
    extras = asset.get("extras")
    if not isinstance(extras, dict):
        extras = {}
    extras[GLB_EXTRAS_KEY] = record.to_dict()
    asset["extras"] = extras
    return _build_glb(gltf, rest)


def read_glb_provenance(glb_bytes: bytes) -> dict | None:
    """The record stored by `stamp_glb`, or None."""
    gltf, _ = _parse_glb(glb_bytes)
    extras = gltf.get("asset", {}).get("extras")
    return extras.get(GLB_EXTRAS_KEY) if isinstance(extras, dict) else None


# --------------------------------------------------------------------------- manifest and verify


def manifest_path(file_path: Path | str) -> Path:
    """`<file>.manifest.json` beside the file."""
    file_path = Path(file_path)
    return file_path.with_name(file_path.name + MANIFEST_SUFFIX)


def _is_png(data: bytes) -> bool:
    return data[:8] == b"\x89PNG\r\n\x1a\n"


def write_manifest(file_path: Path | str, record: ProvenanceRecord, keys: StudioKeys) -> Path:
    """Write the signed sidecar manifest for a stamped file and return its path."""
    file_path = Path(file_path)
    data = file_path.read_bytes()
    body: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "file_name": file_path.name,
        "file_sha256": sha256_hex(data),
        "record": record.to_dict(),
        "public_key": keys.public_key_b64,
    }
    if _is_png(data):
        body["pixel_sha256"] = pixel_sha256(read_png_provenance(data)[1])
    body["signature"] = keys.sign(canonical_bytes(body))
    path = manifest_path(file_path)
    atomic_write_bytes(path, (json.dumps(body, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8"), mode=0o644)
    return path


@dataclass
class VerifyResult:
    """Outcome of `verify_file`: status 'valid' | 'tampered' | 'unknown', a reason, and the record if any."""

    status: str
    reason: str
    record: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "valid"


def verify_file(path: Path | str, trusted_public_keys: Iterable[Any]) -> VerifyResult:
    """Check a PNG or GLB against its manifest and embedded provenance.

    'unknown': no provenance at all (or unsigned provenance); 'tampered': any check failed;
    'valid': a trusted signature covers this exact file (manifest) or these exact pixels (PNG chunks)."""
    path = Path(path)
    data = path.read_bytes()
    trusted = {public_key_b64(k) for k in trusted_public_keys}
    embedded: dict | None = None
    chunks: dict[str, str] = {}
    pix: str | None = None
    try:
        if _is_png(data):
            chunks, image = read_png_provenance(data)
            pix = pixel_sha256(image)
            if PNG_RECORD_KEY in chunks:
                embedded = json.loads(chunks[PNG_RECORD_KEY])
        elif data[:4] == _GLB_MAGIC:
            embedded = read_glb_provenance(data)
    except (ProvenanceError, ValueError, OSError) as exc:
        return VerifyResult("tampered", f"{path.name} cannot be parsed: {exc}")

    mpath = manifest_path(path)
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text("utf-8"))
            body = {k: v for k, v in manifest.items() if k != "signature"}
            signature = manifest["signature"]
            record = manifest["record"]
        except (ValueError, KeyError, TypeError) as exc:
            return VerifyResult("tampered", f"manifest {mpath.name} is malformed: {exc}", embedded)
        if body.get("public_key") not in trusted:
            return VerifyResult("tampered", f"manifest {mpath.name} is signed by an untrusted key {body.get('public_key')!r}", record)
        if not verify_signature(body["public_key"], signature, canonical_bytes(body)):
            return VerifyResult("tampered", f"manifest {mpath.name}: signature does not match its contents (manifest edited)", record)
        if embedded is not None and embedded != record:
            return VerifyResult("tampered", f"{path.name}: embedded provenance differs from the signed manifest (metadata edited)", record)
        if pix is not None and body.get("pixel_sha256") not in (None, pix):
            return VerifyResult("tampered", f"{path.name}: pixels differ from the signed pixel hash (image edited)", record)
        if pix is not None and chunks.get(PNG_PIXEL_KEY) not in (None, pix):
            return VerifyResult("tampered", f"{path.name}: embedded pixel hash does not match the pixels", record)
        if body.get("file_sha256") != sha256_hex(data):
            return VerifyResult("tampered", f"{path.name}: file bytes differ from the signed file hash", record)
        return VerifyResult("valid", f"signed manifest by key {sha256_hex(base64.b64decode(body['public_key']))[:16]} matches the file", record)

    if embedded is None:
        return VerifyResult("unknown", f"{path.name} carries no studio provenance and has no manifest")
    if pix is not None and PNG_SIGNATURE_KEY in chunks:
        if chunks.get(PNG_PIXEL_KEY) != pix:
            return VerifyResult("tampered", f"{path.name}: pixels differ from the embedded pixel hash (image edited)", embedded)
        public = chunks.get(PNG_PUBLIC_KEY, "")
        if public not in trusted:
            return VerifyResult("tampered", f"{path.name}: embedded signature is by an untrusted key", embedded)
        if not verify_signature(public, chunks[PNG_SIGNATURE_KEY], _embedded_signed_bytes(embedded, pix)):
            return VerifyResult("tampered", f"{path.name}: embedded signature does not match the record (metadata edited)", embedded)
        return VerifyResult("valid", "embedded signature matches pixels and record (no manifest beside the file)", embedded)
    return VerifyResult("unknown", f"{path.name} has provenance but no signature or manifest to check it", embedded)
