"""C2PA Content Credentials on PNGs: signed with a locally made chain, read back, and broken by edits."""
from __future__ import annotations

import io

import pytest
from c2pa_certs import make_chain
from PIL import Image

from brand_guard.c2pa_sign import (
    PROVENANCE_LABEL, TRAINED_ALGORITHMIC_MEDIA, C2paSigner, c2pa_errors, c2pa_summary, read_c2pa,
)
from brand_guard.errors import ProvenanceError
from brand_guard.provenance import (
    PNG_RECORD_KEY, ProvenanceRecord, StudioKeys, read_png_provenance, stamp_png, verify_file, write_manifest,
)

pytest.importorskip("c2pa")


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    cert, key = make_chain(tmp_path_factory.mktemp("c2pa"))
    return C2paSigner.from_files(cert, key, alg="es256")


def _record(design_id="d-c2pa-1"):
    return ProvenanceRecord(design_id=design_id, actor="ana", prompt="a quilted bag", seed=7, model="tiny",
                            params={"steps": 2, "size": [64, 64]}, adapters=["house-style"])


def _stamped(keys, textured_image, record):
    return stamp_png(textured_image(3, 64), record, keys)


def test_sign_and_read_back(signer, textured_image):
    keys, record = StudioKeys.generate(), _record()
    png = _stamped(keys, textured_image, record)
    signed = signer.sign_png(png, record)

    assert b"caBX" in signed and b"caBX" not in png
    store = read_c2pa(signed)
    assert store is not None
    # The only failure is the trust list: our test root is on none. Signature and data hash are valid.
    assert [s["code"] for s in store["validation_status"]] == ["signingCredential.untrusted"]
    assert c2pa_errors(store) == []
    assert store["validation_state"] == "Valid"
    success = {s["code"] for s in store["validation_results"]["activeManifest"]["success"]}
    assert {"claimSignature.validated", "assertion.dataHash.match"} <= success
    assert store["provenance"] == record.to_dict()

    active = store["manifests"][store["active_manifest"]]
    assert active["claim_generator_info"][0]["name"] == "Design Studio"
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert actions[0]["action"] == "c2pa.created" and actions[0]["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    custom = next(a for a in active["assertions"] if a["label"] == PROVENANCE_LABEL)["data"]
    assert custom["record"] == record.canonical_json()
    assert c2pa_summary(signed)[0] == "valid"

    # The studio's own chunks and pixels survive the C2PA chunk.
    text, image = read_png_provenance(signed)
    _, original = read_png_provenance(png)
    assert text[PNG_RECORD_KEY] == record.canonical_json() and image.tobytes() == original.tobytes()


def test_studio_verification_still_valid_after_c2pa(signer, textured_image, tmp_path):
    keys, record = StudioKeys.generate(), _record("d-c2pa-2")
    path = tmp_path / "signed.png"
    path.write_bytes(signer.sign_png(_stamped(keys, textured_image, record), record))
    assert verify_file(path, [keys]).status == "valid"  # embedded chunks, no manifest
    write_manifest(path, record, keys)
    result = verify_file(path, [keys])
    assert result.status == "valid" and result.record == record.to_dict()


def test_byte_edits_break_c2pa(signer, textured_image):
    record = _record("d-c2pa-3")
    signed = signer.sign_png(_stamped(StudioKeys.generate(), textured_image, record), record)
    idat = signed.index(b"IDAT")
    edited = bytearray(signed)
    edited[idat + 20] ^= 0x5A  # compressed pixel data
    store = read_c2pa(bytes(edited))
    assert store is not None and "assertion.dataHash.mismatch" in c2pa_errors(store)
    assert store["validation_state"] == "Invalid"
    assert c2pa_summary(bytes(edited))[0] == "invalid"

    # Re-saving with Pillow drops the manifest entirely: absent, not valid.
    with Image.open(io.BytesIO(signed)) as im:
        buf = io.BytesIO()
        im.save(buf, format="PNG")
    assert read_c2pa(buf.getvalue()) is None
    assert c2pa_summary(buf.getvalue())[0] == "absent"


def test_bad_inputs_are_named(tmp_path, signer):
    with pytest.raises(ProvenanceError, match="does not exist"):
        C2paSigner.from_files(tmp_path / "nope.pem", tmp_path / "nope.key")
    cert, key = make_chain(tmp_path / "chain")
    with pytest.raises(ProvenanceError, match="accepted: es256, ps256, ed25519"):
        C2paSigner.from_files(cert, key, alg="rs1")
    with pytest.raises(ProvenanceError, match="not PEM"):
        C2paSigner.from_files(key, key)
    with pytest.raises(ProvenanceError, match="expected PNG"):
        signer.sign_png(b"GIF89a....", _record())
    with pytest.raises(ProvenanceError, match="expected PNG"):
        read_c2pa(b"\xff\xd8\xff")
    # A key that does not match the certificate is refused when signing, not silently accepted.
    other_cert, _ = make_chain(tmp_path / "other")
    mismatched = C2paSigner.from_files(other_cert, key)
    png = stamp_png(Image.new("RGB", (32, 32), (9, 9, 9)), _record(), StudioKeys.generate())
    with pytest.raises(ProvenanceError, match="C2PA"):
        mismatched.sign_png(png, _record())
