"""Owner-only files and folders for what holds secrets: the data dir, the SQLite database (it holds the
password hashes) with its -wal/-shm/-journal companions, the key dir and the ledger head.

Folders get 0700 and files 0600 whatever the process umask is. SQLite creates its -wal and -shm files
with the permissions of the database file, so creating the database file 0600 first keeps them private.
"""
from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: Path | str) -> Path:
    """Make ``path`` (and missing parents) and give ``path`` itself mode 0700."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)
    return path


def prepare_data_dir(path: Path | str) -> Path:
    """The studio's data dir, made owner-only; ``InvalidRequest`` in one line when it cannot be a folder."""
    from .errors import InvalidRequest

    path = Path(path)
    accepted = "accepted: a folder you can write to (it is made when missing)"
    if path.exists() and not path.is_dir():
        raise InvalidRequest(f"data dir {path} is a file, not a folder; {accepted}")
    try:
        private_dir(path)
    except OSError as exc:
        raise InvalidRequest(f"data dir {path} cannot be made or used ({exc.strerror or exc}); {accepted}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InvalidRequest(f"data dir {path} is not writable by this user; {accepted}")
    return path


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL; None for in-memory or other databases."""
    if not url.startswith("sqlite:///"):
        return None
    name = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not name or name == ":memory:":
        return None
    return Path(name)


def private_sqlite(url: str) -> None:
    """Create the SQLite file 0600 before SQLite does, and narrow it and its companions if they exist."""
    db = sqlite_file(url)
    if db is None:
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT, FILE_MODE))
    narrow_sqlite_files(db)


def narrow_sqlite_files(db: Path) -> None:
    for path in (db, *(Path(str(db) + suffix) for suffix in SQLITE_COMPANIONS)):
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, FILE_MODE)
        except FileNotFoundError:
            pass
