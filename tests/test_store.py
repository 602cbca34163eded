"""The design store: SQLite in WAL with foreign keys, migrations, content-addressed atomic files."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from design_studio.errors import NotFound
from design_studio.store import Store
from design_studio.store.migrations import MIGRATIONS


def test_sqlite_pragmas_and_schema_version(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files")
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert store.schema_version == len(MIGRATIONS)
    # Opening again applies nothing twice.
    assert Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files").schema_version == len(MIGRATIONS)


def test_foreign_keys_are_enforced(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files")
    with pytest.raises(IntegrityError):
        store.add_design(project_id=999, kind="image", file="x.png", sha256="0" * 64)


def test_files_are_content_addressed_and_confined(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files")
    rel, digest = store.files.put(b"hello", ".txt")
    assert rel == f"{digest[:2]}/{digest}.txt"
    assert store.files.put(b"hello", ".txt") == (rel, digest)
    assert store.files.read(rel) == b"hello"
    assert not list((tmp_path / "files").rglob(".tmp-*"))
    with pytest.raises(NotFound):
        store.files.path("../a.db")


def test_search_and_projects(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files")
    p = store.project("SS27 handbags", brief="structured, cognac")
    assert store.project("SS27 handbags").id == p.id
    rel, digest = store.files.put(b"x", ".png")
    store.add_design(project_id=p.id, kind="image", prompt="red tote", file=rel, sha256=digest)
    store.add_design(project_id=p.id, kind="image", prompt="blue clutch", file=rel, sha256=digest)
    assert [d.prompt for d in store.designs(text="tote")] == ["red tote"]
    assert len(store.designs(project_id=p.id, kind="image")) == 2
    with pytest.raises(NotFound):
        store.design(12345)


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    import errno
    import os

    from design_studio.errors import ResourceExhausted

    store = Store(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "files")
    kept, _ = store.files.put(b"already saved", ".txt")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(ResourceExhausted, match="disk .* is full; nothing was saved"):
        store.files.put(b"new bytes", ".txt")
    monkeypatch.undo()
    assert store.files.read(kept) == b"already saved"
    assert sorted(p.name for p in (tmp_path / "files").rglob("*") if p.is_file()) == [kept.split("/")[1]]
