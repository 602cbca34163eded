"""What holds secrets is owner-only: the data dir, studio.db (password hashes) with its -wal/-shm
files, the key dir and the ledger head, even under a permissive umask and for an older, wider database."""
from __future__ import annotations

import io
import os
import stat

import pytest
from gov_helpers import as_user
from PIL import Image


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "tan").save(buf, format="PNG")
    return buf.getvalue()


def test_data_dir_database_keys_and_head_are_owner_only(settings, open_umask):
    from design_studio.services import Studio

    studio = Studio(settings)
    studio.add_user("ann", "designer", "ann-designs-1")
    studio.import_image(_png(), name="swatch.png", actor=as_user(studio, "ann"))  # a ledger event: writes the signed head
    data = settings.data_dir
    db = data / "studio.db"
    assert mode(data) == 0o700
    for path in (db, str(db) + "-wal", str(db) + "-shm"):
        assert os.path.exists(path), path
        assert mode(path) == 0o600, (path, oct(mode(path)))
    assert mode(settings.key_dir) == 0o700
    assert all(mode(p) == 0o600 for p in settings.key_dir.iterdir())
    assert mode(data / "ledger.head.json") == 0o600
    # Nobody else can read the password hashes, whichever file SQLite put them in.
    for path in (db, str(db) + "-wal"):
        assert not os.stat(path).st_mode & (stat.S_IRGRP | stat.S_IROTH)


def test_an_older_world_readable_database_is_narrowed_on_open(settings, open_umask):
    import sqlite3

    from design_studio.services import Studio

    settings.data_dir.mkdir(parents=True)
    os.chmod(settings.data_dir, 0o755)
    db = settings.data_dir / "studio.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    os.chmod(db, 0o644)
    Studio(settings).users()
    assert mode(settings.data_dir) == 0o700 and mode(db) == 0o600
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(db) + suffix):
            assert mode(str(db) + suffix) == 0o600


def test_private_dir_helpers(tmp_path, open_umask):
    from design_studio.private_paths import private_dir, private_sqlite, sqlite_file

    made = private_dir(tmp_path / "a" / "b")
    assert mode(made) == 0o700
    private_sqlite(f"sqlite:///{tmp_path / 'x.db'}")
    assert mode(tmp_path / "x.db") == 0o600
    assert sqlite_file("sqlite:///:memory:") is None and sqlite_file("postgresql://u@h/db") is None
