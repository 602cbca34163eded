"""C2PA through the studio: a configured certificate signs every new concept PNG, `studio verify`
reports it, and the studio's own provenance still verifies."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from c2pa_certs import make_chain
from gov_helpers import cli_env, as_user

from brand_guard.c2pa_sign import c2pa_errors, read_c2pa

pytest.importorskip("c2pa")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def c2pa_settings(settings, tmp_path):
    cert, key = make_chain(tmp_path / "c2pa")
    return settings.model_copy(update={"c2pa_cert": cert, "c2pa_key": key})


def test_concepts_carry_c2pa_and_cli_verify_reports_it(c2pa_settings, tmp_path):
    from design_studio.services import Studio

    studio = Studio(c2pa_settings)
    design = studio.generate_concepts("a saddle-stitched tote", n=1, seed=5, actor=as_user(studio, "ana"))[0]
    path = studio.store.file_path(design)
    store = read_c2pa(path.read_bytes())
    assert store is not None and c2pa_errors(store) == []
    assert [s["code"] for s in store["validation_status"]] == ["signingCredential.untrusted"]
    assert store["provenance"]["design_id"] == design.uid and store["provenance"]["actor"] == "ana"
    assert studio.verify_file(path).status == "valid"  # manifest (file hash) was written after C2PA

    env = dict(os.environ, **cli_env(c2pa_settings))
    cmd = [sys.executable, "-m", "design_studio.cli", "verify", str(path)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "valid" and report["c2pa"]["status"] == "valid"
    assert "present" in report["c2pa"]["detail"]

    # Flip one byte of the C2PA chunk's neighbour (pixel data), keeping the studio manifest aside:
    # C2PA alone must call the copy altered.
    copy = tmp_path / "edited.png"
    data = bytearray(path.read_bytes())
    data[data.index(b"IDAT") + 30] ^= 0x33
    copy.write_bytes(bytes(data))
    assert studio.c2pa_status(copy)["status"] == "invalid"


def test_without_certificate_no_c2pa_and_verify_says_absent(studio, settings, monkeypatch, capsys):
    from design_studio.cli import main

    design = studio.generate_concepts("a plain clutch", n=1, seed=6, actor=as_user(studio, "ana"))[0]
    path = studio.store.file_path(design)
    assert read_c2pa(path.read_bytes()) is None
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    assert main(["verify", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["c2pa"]["status"] == "absent"


def test_half_configured_certificate_is_refused(tmp_path):
    from design_studio.settings import Settings

    with pytest.raises(ValueError, match="c2pa_cert is set but c2pa_key is not"):
        Settings(data_dir=tmp_path / "d", key_dir=tmp_path / "k", c2pa_cert=tmp_path / "chain.pem")
