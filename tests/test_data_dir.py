"""A --data-dir that cannot be the studio's folder (a file, under a file, not writable) gets one clear
line and exit 2, from the CLI and from launch.py, never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from design_studio.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("where, words", [("{file}", "is a file, not a folder"),
                                          ("{file}/data", "cannot be made or used (Not a directory)")])
def test_cli_refuses_a_data_dir_that_is_not_a_folder(a_file, tmp_path, monkeypatch, capsys, where, words):
    monkeypatch.setenv("STUDIO_KEY_DIR", str(tmp_path / "keys"))
    target = where.format(file=a_file)
    assert main(["users", "list", "--data-dir", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"studio: error: data dir {target} {words}")
    assert a_file.read_text() == "not a folder"  # nothing harmed


def test_the_environment_variable_gets_the_same_answer(a_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STUDIO_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("STUDIO_DATA_DIR", str(a_file))
    assert main(["users", "list"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_an_unwritable_data_dir_is_refused(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "locked"
    folder.mkdir()
    os.chmod(folder, 0o500)
    try:
        monkeypatch.setenv("STUDIO_KEY_DIR", str(tmp_path / "keys"))
        assert main(["users", "list", "--data-dir", str(folder / "data")]) == 2
        assert "cannot be made or used" in capsys.readouterr().err
    finally:
        os.chmod(folder, 0o700)


def test_launch_py_says_one_line_and_exits_2(a_file, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "STUDIO_KEY_DIR": str(tmp_path / "keys")}
    run = subprocess.run([sys.executable, str(ROOT / "launch.py"), "--data-dir", str(a_file), "--port", "1"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr and run.stderr.strip().count("\n") == 0
    assert run.stderr.startswith(f"studio: error: data dir {a_file} is a file, not a folder")
