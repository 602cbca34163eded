"""The vault: encrypted at rest, one logged read path, wrong keys and tampering refused."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from brand_guard.errors import InsecureKeyFile, InvalidImage, TamperedFile, VaultError, WrongPassphrase
from brand_guard.vault import ACCESS_LOG, Vault, VaultKey, _decrypt



def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


@pytest.fixture
def vault(tmp_path, fast_key):
    root = tmp_path / "vault"
    return Vault.create(root, fast_key(root))


@pytest.fixture
def source(tmp_path, textured_image):
    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        _save(textured_image(i, 96), src / f"look{i}.png")
    return src


def test_add_list_counts_and_read_back_pixels(vault, source):
    report = vault.add_images(source, collection="AW27", actor="ann")
    assert len(report.added) == 3 and not report.duplicates and not report.rejected
    assert vault.counts() == {"AW27": 3}
    items = vault.list("AW27")
    assert {i.source_name for i in items} == {"look0.png", "look1.png", "look2.png"}
    got = dict(vault.read("AW27", actor="ann", purpose="lora training"))
    by_name = {i.source_name: i.item_id for i in items}
    original = np.asarray(Image.open(source / "look1.png"))
    assert np.array_equal(np.asarray(got[by_name["look1.png"]]), original)


def test_wrong_passphrase_refused_and_nothing_decrypted(tmp_path, source, fast_key):
    root = tmp_path / "vault"
    v = Vault.create(root, fast_key(root))
    v.add_images(source, collection="AW27", actor="ann")
    with pytest.raises(WrongPassphrase, match="does not open"):
        Vault.open(root, fast_key(root, "wrong horse"))
    log = v.access_log()
    assert [e["action"] for e in log] == ["add"]  # the failed open read nothing


def test_unlock_with_passphrase(tmp_path, source):
    root = tmp_path / "vault"
    Vault.create(root, VaultKey.from_passphrase("pw-1", root / "kdf.json", n=2**12)).add_images(source, "AW27", "ann")
    assert Vault.unlock(root, "pw-1").counts() == {"AW27": 3}


def test_tampered_ciphertext_detected(vault, source):
    vault.add_images(source, collection="AW27", actor="ann")
    item = vault.list()[0]
    path = vault._item_path(item.item_id)
    data = bytearray(path.read_bytes())
    data[40] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(TamperedFile, match=item.item_id):
        vault.read([item.item_id], actor="ann", purpose="check")
    assert vault.access_log()[-1]["outcome"] == "tampered"


def test_swapped_ciphertexts_detected(vault, source):
    vault.add_images(source, collection="AW27", actor="ann")
    a, b = vault.list()[:2]
    pa, pb = vault._item_path(a.item_id), vault._item_path(b.item_id)
    da, db = pa.read_bytes(), pb.read_bytes()
    pa.write_bytes(db)
    pb.write_bytes(da)
    with pytest.raises(TamperedFile):
        vault.read([a.item_id], actor="ann", purpose="check")


def test_no_plaintext_on_disk_after_add_and_read(vault, source):
    vault.add_images(source, collection="AW27", actor="ann")
    vault.read("AW27", actor="ann", purpose="training")
    vault.add_blob("aw27-lora", b"SAFETENSORS-MARKER" * 50, actor="ann")
    vault.read_blob("aw27-lora", actor="ann", purpose="generation")
    pixels = np.asarray(Image.open(source / "look0.png")).tobytes()[:48]
    for path in vault.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"\x89PNG" not in data, path
            assert pixels not in data, path
            assert b"SAFETENSORS-MARKER" not in data, path
            assert b"look0" not in data or path.name == ACCESS_LOG, path


def test_deduplicates_by_decoded_pixels(vault, tmp_path, textured_image):
    img = textured_image(7, 64)
    a = _save(img, tmp_path / "a.png")
    b = _save(img, tmp_path / "b.webp", lossless=True)
    report = vault.add_images([a, b], collection="SS27", actor="ann")
    assert len(report.added) == 1
    assert report.duplicates == [(str(b), report.added[0])]
    again = vault.add_images([a], collection="SS27", actor="ann")
    assert again.added == [] and len(again.duplicates) == 1


def test_exif_and_gps_stripped(vault, tmp_path, textured_image):
    img = textured_image(3, 64)
    exif = Image.Exif()
    exif[0x010F] = "SecretCameraMaker"
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 29.0)}  # GPS IFD
    path = tmp_path / "gps.jpg"
    img.save(path, exif=exif.tobytes(), quality=95)
    assert Image.open(path).getexif()
    vault.add_images([path], collection="AW27", actor="ann")
    [(item_id, out)] = vault.read("AW27", actor="ann", purpose="check")
    assert not out.getexif()
    assert "exif" not in out.info and not out.info.get("icc_profile")
    stored = _decrypt(vault._key.key, vault._item_path(item_id).read_bytes(), item_id.encode(), "item")
    assert stored.startswith(b"\x89PNG")
    assert b"SecretCameraMaker" not in stored and b"eXIf" not in stored


def test_rejects_bad_format_truncated_and_bomb(vault, tmp_path, textured_image):
    gif = tmp_path / "x.gif"
    textured_image(1, 32).convert("P").save(gif)
    with pytest.raises(InvalidImage, match="GIF"):
        vault.add_images([gif], collection="AW27", actor="ann")
    good = _save(textured_image(2, 128), tmp_path / "t.png")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(InvalidImage, match="truncated"):
        vault.add_images([trunc], collection="AW27", actor="ann")
    small_vault = Vault.open(vault.root, vault._key, max_pixels=100 * 100)
    big = _save(Image.new("RGB", (300, 300)), tmp_path / "big.png")
    with pytest.raises(InvalidImage, match="decompression bomb"):
        small_vault.add_images([big], collection="AW27", actor="ann")
    report = vault.add_images([gif, good], collection="AW27", actor="ann", strict=False)
    assert len(report.added) == 1 and report.rejected[0][0] == str(gif)


def test_strict_add_writes_nothing_when_one_file_is_bad(vault, tmp_path, textured_image):
    good = _save(textured_image(2, 64), tmp_path / "g.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InvalidImage):
        vault.add_images([good, bad], collection="AW27", actor="ann")
    assert vault.counts() == {}


def test_key_file_permissions(tmp_path):
    path = tmp_path / "vault.key"
    key = VaultKey.generate_file(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert VaultKey.from_file(path).key == key.key
    os.chmod(path, 0o644)
    with pytest.raises(InsecureKeyFile, match="0644"):
        VaultKey.from_file(path)


def test_rotate_key_then_old_key_fails(tmp_path, source, fast_key):
    root = tmp_path / "vault"
    old = fast_key(root)
    v = Vault.create(root, old)
    v.add_images(source, collection="AW27", actor="ann")
    v.add_blob("lora", b"weights" * 10, actor="ann")
    before = {i: np.asarray(im) for i, im in v.read("AW27", actor="ann", purpose="check")}
    new = VaultKey.from_passphrase("new passphrase", None, n=2**12)
    v.rotate_key(new, actor="admin")
    with pytest.raises(WrongPassphrase):
        Vault.open(root, old)
    reopened = Vault.unlock(root, "new passphrase")
    after = {i: np.asarray(im) for i, im in reopened.read("AW27", actor="ann", purpose="check")}
    assert before.keys() == after.keys()
    assert all(np.array_equal(before[k], after[k]) for k in before)
    assert reopened.read_blob("lora", actor="ann", purpose="check") == b"weights" * 10
    assert not list(root.rglob("*.g1.enc"))


def test_rotation_cut_short_keeps_old_generation(tmp_path, source, monkeypatch, fast_key):
    root = tmp_path / "vault"
    old = fast_key(root)
    v = Vault.create(root, old)
    v.add_images(source, collection="AW27", actor="ann")

    def crash(*a, **k):
        raise OSError("power cut")

    monkeypatch.setattr(Vault, "_write_meta", staticmethod(crash))
    with pytest.raises(OSError):
        v.rotate_key(VaultKey.from_passphrase("new", None, n=2**12))
    monkeypatch.undo()
    reopened = Vault.open(root, old)
    assert len(reopened.read("AW27", actor="ann", purpose="check")) == 3
    assert not list(root.rglob("*.g2.enc"))


def test_every_read_is_logged(vault, source):
    vault.add_images(source, collection="AW27", actor="ann")
    ids = [i.item_id for i in vault.list()][:2]
    vault.read(ids, actor="bob", purpose="near-copy index")
    vault.add_blob("lora", b"x", actor="ann")
    vault.read_blob("lora", actor="carl", purpose="generation")
    log = vault.access_log()
    reads = [e for e in log if e["action"] in ("read", "read_blob")]
    assert reads[0]["actor"] == "bob" and reads[0]["purpose"] == "near-copy index" and reads[0]["items"] == ids
    assert reads[1]["actor"] == "carl" and reads[1]["items"] == ["lora"]
    assert all(e["ts"] for e in reads)
    with pytest.raises(VaultError, match="purpose"):
        vault.read(ids, actor="bob", purpose="")


def test_remove(vault, source):
    vault.add_images(source, collection="AW27", actor="ann")
    item = vault.list()[0]
    vault.remove(item.item_id, actor="ann")
    assert vault.counts() == {"AW27": 2}
    assert not vault._item_path(item.item_id).exists()
    with pytest.raises(VaultError, match=item.item_id):
        vault.read([item.item_id], actor="ann", purpose="check")
