"""Provenance: stamped PNG/GLB with a signed manifest verify as valid; any edit, forgery or absence shows."""

from __future__ import annotations

import io
import json
import stat
import struct

import numpy as np
import pytest
import trimesh
from PIL import Image

from brand_guard import provenance as prov
from brand_guard.errors import InsecureKeyFile
from brand_guard.provenance import ProvenanceRecord, StudioKeys


@pytest.fixture(scope="module")
def keys():
    return StudioKeys.generate()


@pytest.fixture
def record():
    return ProvenanceRecord(
        design_id="des-0042", actor="ann", prompt="wool coat, shawl collar", negative_prompt="blurry", seed=1234,
        model="sdxl-base", revision="abc123", adapters=["aw27-lora"], parents=["des-0007"],
        params={"steps": 4, "guidance": 1.5}, kind="concept", created_at="2026-11-23T10:00:00+00:00",
    )


@pytest.fixture
def stamped(tmp_path, keys, record, textured_image):
    path = tmp_path / "concept.png"
    path.write_bytes(prov.stamp_png(textured_image(1, 320), record, keys))
    prov.write_manifest(path, record, keys)
    return path


def test_canonical_json_is_sorted_and_compact(record):
    text = record.canonical_json()
    assert text.startswith('{"actor":"ann","adapters":["aw27-lora"],"created_at":"2026-11-23T10:00:00+00:00"')
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert '"guidance":1.5,"steps":4' in text
    assert ProvenanceRecord.from_dict(json.loads(text)) == record


def test_keys_created_0600_and_reloaded(tmp_path):
    keys = StudioKeys.load_or_create(tmp_path / "keys")
    pem = tmp_path / "keys" / prov.PRIVATE_KEY_FILE
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert StudioKeys.load_or_create(tmp_path / "keys").public_key_b64 == keys.public_key_b64
    pem.chmod(0o644)
    with pytest.raises(InsecureKeyFile):
        StudioKeys.load_or_create(tmp_path / "keys")


def test_stamped_png_carries_record_and_watermark(stamped, record):
    im = Image.open(stamped)
    assert json.loads(im.text[prov.PNG_RECORD_KEY]) == record.to_dict()
    assert im.text[prov.PNG_PIXEL_KEY] == prov.pixel_sha256(im.convert(im.mode))
    assert prov.detect_watermark(im) == prov.watermark_payload(record.design_id)


def test_valid(stamped, keys, record):
    result = prov.verify_file(stamped, [keys.public_key_b64])
    assert result.status == "valid", result.reason
    assert result.record == record.to_dict()


def test_embedded_signature_valid_without_manifest(stamped, keys):
    prov.manifest_path(stamped).unlink()
    result = prov.verify_file(stamped, [keys])
    assert result.status == "valid" and "no manifest" in result.reason


def test_edited_pixels_tampered(stamped, keys):
    im = Image.open(stamped)
    im.load()
    info = im.info
    arr = np.asarray(im).copy()
    arr[10, 10] = 255 - arr[10, 10]
    from PIL import PngImagePlugin

    meta = PngImagePlugin.PngInfo()
    for k, v in im.text.items():
        meta.add_text(k, v)
    Image.fromarray(arr).save(stamped, pnginfo=meta)
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered" and "pixel" in result.reason
    prov.manifest_path(stamped).unlink()
    assert prov.verify_file(stamped, [keys]).status == "tampered"
    assert info  # the original carried text chunks


def test_edited_metadata_tampered(stamped, keys):
    data = stamped.read_bytes()
    assert b"wool coat" in data
    stamped.write_bytes(data.replace(b"wool coat", b"silk coat"))  # a hex-editor edit: chunk CRC now wrong
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered", result.reason


def test_metadata_rewritten_cleanly_is_tampered(stamped, keys, record):
    im = Image.open(stamped)
    im.load()
    from PIL import PngImagePlugin

    edited = record.to_dict() | {"prompt": "something else"}
    meta = PngImagePlugin.PngInfo()
    for k, v in im.text.items():
        meta.add_text(k, json.dumps(edited, sort_keys=True, separators=(",", ":")) if k == prov.PNG_RECORD_KEY else v)
    im.save(stamped, pnginfo=meta)
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered" and "metadata" in result.reason
    prov.manifest_path(stamped).unlink()
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered" and "signature" in result.reason


def test_forged_manifest_resigned_with_other_key(stamped, keys):
    mpath = prov.manifest_path(stamped)
    manifest = json.loads(mpath.read_text())
    other = StudioKeys.generate()
    body = {k: v for k, v in manifest.items() if k != "signature"} | {"public_key": other.public_key_b64}
    body["record"]["actor"] = "mallory"
    from brand_guard.canonical import canonical_bytes

    body["signature"] = other.sign(canonical_bytes(body))
    mpath.write_text(json.dumps(body))
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered" and "untrusted" in result.reason
    manifest["record"]["actor"] = "mallory"  # same key, not re-signed
    mpath.write_text(json.dumps(manifest))
    result = prov.verify_file(stamped, [keys])
    assert result.status == "tampered" and "signature" in result.reason


def test_plain_png_unknown(tmp_path, keys, textured_image):
    path = tmp_path / "plain.png"
    textured_image(5, 64).save(path)
    result = prov.verify_file(path, [keys])
    assert result.status == "unknown" and result.record is None


def test_small_image_skips_watermark_with_reason(keys, record, textured_image):
    data = prov.stamp_png(textured_image(2, 128), record, keys)
    im = Image.open(io.BytesIO(data))
    wm = json.loads(im.text[prov.PNG_WATERMARK_KEY])
    assert wm["scheme"] is None and "smaller than 256" in wm["skipped"]
    assert prov.detect_watermark(im) is None


def test_detect_watermark_none_on_unmarked(textured_image):
    assert all(prov.detect_watermark(textured_image(s, 320)) is None for s in range(20, 25))


def _tiny_glb() -> bytes:
    return trimesh.creation.box(extents=(1, 2, 3)).export(file_type="glb")


def test_glb_stamp_round_trip_and_verify(tmp_path, keys, record):
    original = _tiny_glb()
    stamped = prov.stamp_glb(original, record)
    assert len(stamped) % 4 == 0 and struct.unpack_from("<I", stamped, 8)[0] == len(stamped)
    assert prov.read_glb_provenance(stamped) == record.to_dict()
    mesh = trimesh.load(io.BytesIO(stamped), file_type="glb", force="mesh")
    assert len(mesh.faces) == 12
    path = tmp_path / "bag.glb"
    path.write_bytes(stamped)
    prov.write_manifest(path, record, keys)
    assert prov.verify_file(path, [keys]).status == "valid"

    gltf, rest = prov._parse_glb(stamped)
    gltf["asset"]["extras"][prov.GLB_EXTRAS_KEY]["seed"] = 99
    path.write_bytes(prov._build_glb(gltf, rest))
    result = prov.verify_file(path, [keys])
    assert result.status == "tampered" and "metadata" in result.reason

    gltf["asset"]["extras"][prov.GLB_EXTRAS_KEY]["seed"] = record.seed
    body = bytearray(prov._build_glb(gltf, rest))
    body[-5] ^= 0xFF  # geometry bytes in the BIN chunk
    path.write_bytes(bytes(body))
    result = prov.verify_file(path, [keys])
    assert result.status == "tampered" and "file" in result.reason


def test_unsigned_glb_without_manifest_is_unknown(tmp_path, keys, record):
    path = tmp_path / "x.glb"
    path.write_bytes(prov.stamp_glb(_tiny_glb(), record))
    result = prov.verify_file(path, [keys])
    assert result.status == "unknown" and result.record == record.to_dict()
    plain = tmp_path / "plain.glb"
    plain.write_bytes(_tiny_glb())
    assert prov.verify_file(plain, [keys]).status == "unknown"


def test_watermark_survival_helper(textured_image):
    images = [textured_image(s, 320) for s in range(3)]
    rates = prov.watermark_survival(images, {"flip": lambda im: im.transpose(Image.FLIP_LEFT_RIGHT)})
    assert rates["none"] == 1.0
    assert rates["flip"] < 1.0


def test_watermark_survives_jpeg75_and_half_size(textured_image, keys, record):
    stamped = Image.open(io.BytesIO(prov.stamp_png(textured_image(8, 512), record, keys)))
    want = prov.watermark_payload(record.design_id)
    buf = io.BytesIO()
    stamped.convert("RGB").save(buf, format="JPEG", quality=75)
    assert prov.detect_watermark(Image.open(io.BytesIO(buf.getvalue()))) == want
    half = stamped.convert("RGB").resize((256, 256), Image.BICUBIC)
    assert prov.detect_watermark(half) == want
