"""The ledger: hash chain with a signed head; every kind of tampering named by its first bad seq;
concurrent writers never fork the chain; designers cannot record decisions."""

from __future__ import annotations

import io
import multiprocessing as mp
import time

import pytest
from sqlalchemy import create_engine, delete, insert, update

from brand_guard.canonical import canonical_json
from brand_guard.errors import LedgerError, PermissionDenied
from brand_guard.ledger import (
    GENESIS_HASH, Ledger, LedgerEntry, LedgerEvent, create_tables, import_csv, ledger_events,
)
from brand_guard.provenance import StudioKeys

WRITERS = 4
PER_WRITER = 1000


def _payload(i: int = 0) -> dict:
    return {"style_id": f"style-{i % 5}", "collection": "AW27", "season": "AW27"}


@pytest.fixture
def ledger(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    create_tables(engine)
    return Ledger(engine, StudioKeys.load_or_create(tmp_path / "keys"), tmp_path / "keys" / "ledger-head.json", checkpoint_every=4)


def _fill(ledger: Ledger, n: int = 10) -> None:
    for i in range(n):
        ledger.append(LedgerEvent.DESIGN_CREATED, "ann", "designer", "design", f"d{i}", _payload(i))


def _rewrite(ledger: Ledger, seq: int, **changes) -> None:
    with ledger.engine.begin() as conn:
        conn.execute(update(ledger_events).where(ledger_events.c.seq == seq).values(**changes))


def test_append_links_and_verifies(ledger):
    _fill(ledger, 3)
    entries = ledger.events()
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[0].prev_hash == GENESIS_HASH
    assert entries[1].prev_hash == entries[0].hash and entries[2].prev_hash == entries[1].hash
    assert all(e.compute_hash() == e.hash for e in entries)
    result = ledger.verify()
    assert result.ok and result.count == 3 and result.first_bad_seq is None


def test_edit_detected(ledger):
    _fill(ledger)
    _rewrite(ledger, 6, payload=canonical_json(_payload(6) | {"collection": "SS28"}))
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 6 and "edited" in result.reason


def test_edit_with_recomputed_hash_detected_at_next_row(ledger):
    _fill(ledger)
    row = ledger.events()[4]
    forged = LedgerEntry(**{**row.to_dict(), "actor": "mallory"})
    _rewrite(ledger, 5, actor="mallory", hash=forged.compute_hash())
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 6


def test_delete_detected(ledger):
    _fill(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(delete(ledger_events).where(ledger_events.c.seq == 4))
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 4 and "missing" in result.reason


def test_insert_detected(ledger):
    _fill(ledger)
    entries = ledger.events()
    with ledger.engine.begin() as conn:
        for e in reversed(entries[6:]):  # make room after seq 6
            conn.execute(update(ledger_events).where(ledger_events.c.seq == e.seq).values(seq=e.seq + 1))
        draft = LedgerEntry(7, "approved", "mallory", "creative_director", "design", "d99", _payload(), entries[5].created_at, entries[5].hash, "")
        forged = LedgerEntry(**{**draft.to_dict(), "hash": draft.compute_hash()})
        conn.execute(insert(ledger_events).values(**{**forged.to_dict(), "payload": canonical_json(forged.payload)}))
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 8


def test_reorder_detected(ledger):
    _fill(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(update(ledger_events).where(ledger_events.c.seq == 3).values(seq=-3))
        conn.execute(update(ledger_events).where(ledger_events.c.seq == 4).values(seq=3))
        conn.execute(update(ledger_events).where(ledger_events.c.seq == -3).values(seq=4))
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 3


def test_truncate_detected_by_signed_head(ledger):
    _fill(ledger, 10)
    with ledger.engine.begin() as conn:
        conn.execute(delete(ledger_events).where(ledger_events.c.seq >= 10))  # after the checkpoint at 8
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 10 and "truncated" in result.reason


def test_truncate_detected_by_checkpoint_when_head_is_lost(ledger):
    _fill(ledger, 10)
    with ledger.engine.begin() as conn:
        conn.execute(delete(ledger_events).where(ledger_events.c.seq >= 7))
    ledger.head_path.unlink()
    result = ledger.verify()
    assert not result.ok and result.first_bad_seq == 7 and "checkpoint" in result.reason


def test_forged_head_detected(ledger, tmp_path):
    _fill(ledger, 5)
    other = Ledger(ledger.engine, StudioKeys.generate(), tmp_path / "other-head.json")
    other._write_head(3, ledger.events()[2].hash)
    ledger.head_path.write_bytes((tmp_path / "other-head.json").read_bytes())
    result = ledger.verify()
    assert not result.ok and "signature" in result.reason


def test_designer_cannot_approve_or_release(ledger):
    _fill(ledger, 1)
    with pytest.raises(PermissionDenied, match="designer"):
        ledger.append("approved", "ann", "designer", "design", "d0", _payload())
    with pytest.raises(PermissionDenied, match="released_to_production"):
        ledger.append("released_to_production", "ann", "designer", "style", "style-0", _payload() | {"sku": "SKU-1"})
    entry = ledger.append("approved", "cd", "creative_director", "design", "d0", _payload())
    assert entry.seq == 2 and ledger.count() == 2


def test_payload_rules(ledger):
    with pytest.raises(LedgerError, match="style_id"):
        ledger.append("design_created", "ann", "designer", "design", "d0", {"collection": "AW27"})
    with pytest.raises(LedgerError, match="currency"):
        ledger.append("sample_ordered", "ann", "designer", "sample", "s1",
                      _payload() | {"supplier": "Mill", "material": "wool", "cost": 120, "currency": "euro"})
    with pytest.raises(LedgerError, match="unknown"):
        ledger.append("teleported", "ann", "designer", "design", "d0", _payload())
    assert ledger.count() == 0


def test_events_filter(ledger):
    _fill(ledger, 3)
    ledger.append("shortlisted", "ann", "designer", "design", "d1", _payload(1))
    assert [e.seq for e in ledger.events(subject_id="d1")] == [2, 4]
    assert [e.seq for e in ledger.events(event=LedgerEvent.SHORTLISTED)] == [4]


def test_csv_round_trip(ledger, tmp_path):
    _fill(ledger, 5)
    ledger.append("sample_ordered", "ann", "designer", "sample", "s1",
                  _payload() | {"supplier": "Mill «Nord»", "material": "wool, felted", "cost": "120.50", "currency": "EUR"})
    path = tmp_path / "ledger.csv"
    assert ledger.export_csv(path) == 6
    assert import_csv(path) == ledger.events()
    buf = io.StringIO()
    ledger.export_csv(buf)
    lines = buf.getvalue().splitlines()
    lines[3] = lines[3].replace("ann", "bob", 1)
    with pytest.raises(LedgerError, match="line 4"):
        import_csv(io.StringIO("\n".join(lines) + "\n"))


def _writer(url: str, key_dir: str, head: str, worker: int, n: int) -> None:
    from pathlib import Path

    from sqlalchemy import create_engine as ce

    from brand_guard.ledger import Ledger as L
    from brand_guard.provenance import StudioKeys as K

    ledger = L(ce(url), K.load_or_create(Path(key_dir)), Path(head))
    for i in range(n):
        ledger.append("design_created", f"writer-{worker}", "designer", "design", f"w{worker}-{i}", _payload(i))


def test_concurrent_writers_one_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = create_engine(url)
    create_tables(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    keys = StudioKeys.load_or_create(tmp_path / "keys")
    head = tmp_path / "keys" / "head.json"
    ctx = mp.get_context("spawn")
    start = time.perf_counter()
    procs = [ctx.Process(target=_writer, args=(url, str(tmp_path / "keys"), str(head), w, PER_WRITER)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    elapsed = time.perf_counter() - start
    assert [p.exitcode for p in procs] == [0] * WRITERS
    ledger = Ledger(engine, keys, head)
    result = ledger.verify()
    assert result.ok, result
    assert result.count == WRITERS * PER_WRITER
    by_writer = {}
    for e in ledger.events():
        by_writer.setdefault(e.actor, []).append(int(e.subject_id.split("-")[1]))
    assert all(v == list(range(PER_WRITER)) for v in by_writer.values()) and len(by_writer) == WRITERS
    print(f"{WRITERS}x{PER_WRITER} concurrent appends in {elapsed:.1f}s")


def test_failed_commit_restores_head(ledger, monkeypatch):
    _fill(ledger, 3)
    from sqlalchemy.engine import Connection

    def boom(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Connection, "commit", boom)
    with pytest.raises(RuntimeError):
        ledger.append("design_created", "ann", "designer", "design", "d9", _payload())
    monkeypatch.undo()
    assert ledger.count() == 3
    result = ledger.verify()  # a head left at 4 would read as a truncated tail
    assert result.ok, result


def test_threads_sharing_one_ledger(ledger):
    import threading

    def work(t):
        for i in range(25):
            ledger.append("design_created", f"t{t}", "designer", "design", f"t{t}-{i}", _payload(i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    result = ledger.verify()
    assert result.ok and result.count == 100, result
