"""The run's durable record: append-only JSONL shards (one per process, fsynced per line) merged into one manifest.

Each line is one state change of one item (``running``, ``done``, ``failed``). A merged manifest holds
one line per item, its latest state; a ``done`` anywhere wins. A line cut short by a crash is skipped.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..store.files import atomic_write

MANIFEST = "manifest.jsonl"
SHARD_GLOB = "manifest.rank*.jsonl"


def shard_path(out_dir: Path, rank: int) -> Path:
    return Path(out_dir) / f"manifest.rank{rank}.jsonl"


def read_records(path: Path) -> list[dict]:
    """Every complete JSON line of ``path`` (a torn last line from a crash is ignored)."""
    if not path.is_file():
        return []
    out = []
    for raw in path.read_bytes().split(b"\n"):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(rec, dict) and "key" in rec and "state" in rec:
            out.append(rec)
    return out


def latest_states(records: list[dict]) -> dict[str, dict]:
    """Key -> the record that counts: the last ``done`` if any, else the latest record."""
    out: dict[str, dict] = {}
    for rec in sorted(records, key=lambda r: (r.get("t", 0.0), r.get("seq", 0))):
        key = rec["key"]
        if out.get(key, {}).get("state") == "done" and rec["state"] != "done":
            continue
        out[key] = rec
    return out


def collect(out_dir: Path) -> dict[str, dict]:
    """The states of the manifest and all shards, read only (what ``merge`` would write)."""
    out_dir = Path(out_dir)
    records = read_records(out_dir / MANIFEST)
    for shard in sorted(out_dir.glob(SHARD_GLOB)):
        records.extend(read_records(shard))
    return latest_states(records)


def merge(out_dir: Path) -> dict[str, dict]:
    """Fold the shards into ``manifest.jsonl`` (atomic rewrite), then remove them; return the states.

    Safe to repeat: a crash between the rewrite and the removal leaves shards whose lines are
    already in the manifest, and merging them again changes nothing.
    """
    out_dir = Path(out_dir)
    shards = sorted(out_dir.glob(SHARD_GLOB))
    records = read_records(out_dir / MANIFEST)
    for shard in shards:
        records.extend(read_records(shard))
    states = latest_states(records)
    if shards or not (out_dir / MANIFEST).exists():
        body = "".join(json.dumps(rec, sort_keys=True, ensure_ascii=False) + "\n"
                       for rec in sorted(states.values(), key=lambda r: (r.get("line", 0), r["key"])))
        atomic_write(out_dir / MANIFEST, body.encode("utf-8"))
        for shard in shards:
            shard.unlink()
    return states


class ShardWriter:
    """Appends one record per line to this process's shard; each line is on disk before ``append`` returns."""

    def __init__(self, path: Path, *, rank: int = 0):
        self.path = Path(path)
        self.rank = rank
        self.seq = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: every write lands at the end even if an old torn line is there; the leading
        # newline below keeps a torn line from gluing onto the next record.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        created = os.fstat(self._fd).st_size == 0
        if created:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._needs_newline = not created

    def append(self, record: dict) -> dict:
        self.seq += 1
        record = dict(record, t=time.time(), seq=self.seq, rank=self.rank, pid=os.getpid())
        data = json.dumps(record, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n"
        if self._needs_newline:
            data = b"\n" + data
            self._needs_newline = False
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            self._needs_newline = True  # a torn line may be on disk; start the next one afresh
            raise
        return record

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
