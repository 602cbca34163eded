"""Tamper-evident decision ledger: hash-chained events on SQLAlchemy Core (SQLite or PostgreSQL),
serialised appends, a signed head file and signed checkpoints so edits, deletions and truncation show."""

from __future__ import annotations

import csv
import io
import json
import random
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, Text, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from .canonical import canonical_bytes, canonical_json, sha256_hex
from .csvsafe import restore_cell, write_rows
from .errors import LedgerBusy, LedgerError, PermissionDenied
from .fsutil import atomic_write_bytes
from .provenance import StudioKeys, verify_signature

GENESIS_HASH = "0" * 64
HEAD_FORMAT = "studio-ledger-head/1"
CHECKPOINT_EVERY = 100
PG_LOCK_KEY = 0x5354_4C44  # "STLD": advisory lock id for ledger appends


class LedgerEvent(str, Enum):
    """Events the ledger records."""

    DESIGN_CREATED = "design_created"
    SHORTLISTED = "shortlisted"
    FLAG_OVERRIDDEN = "flag_overridden"
    APPROVED = "approved"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    SAMPLE_ORDERED = "sample_ordered"
    SAMPLE_RECEIVED = "sample_received"
    SAMPLE_REJECTED = "sample_rejected"
    RELEASED_TO_PRODUCTION = "released_to_production"
    STYLE_DROPPED = "style_dropped"
    BASELINE_SET = "baseline_set"


class Role(str, Enum):
    """Roles an actor may hold."""

    DESIGNER = "designer"
    CREATIVE_DIRECTOR = "creative_director"
    ADMIN = "admin"
    SYSTEM = "system"


DECISION_EVENTS = frozenset({
    LedgerEvent.APPROVED, LedgerEvent.REJECTED, LedgerEvent.CHANGES_REQUESTED, LedgerEvent.FLAG_OVERRIDDEN,
    LedgerEvent.RELEASED_TO_PRODUCTION, LedgerEvent.STYLE_DROPPED, LedgerEvent.BASELINE_SET,
})
DECIDING_ROLES = frozenset({Role.CREATIVE_DIRECTOR.value, Role.ADMIN.value})
REQUIRED_PAYLOAD = {
    LedgerEvent.SAMPLE_ORDERED: ("supplier", "material", "cost", "currency"),
    LedgerEvent.RELEASED_TO_PRODUCTION: ("sku",),
    LedgerEvent.FLAG_OVERRIDDEN: ("reason",),
    LedgerEvent.BASELINE_SET: ("collection", "samples_per_style", "days_to_approval"),
}
# Payload convention (every event about a style): "style_id" (the root design of a lineage is the
# style) and "collection"; "season" when known. Ratios group and count by these keys. A baseline
# belongs to a collection, not to a style, so it carries only its own keys.
STYLELESS_EVENTS = frozenset({LedgerEvent.BASELINE_SET})
CONVENTION_KEYS = ("style_id", "collection")

ledger_metadata = MetaData()

ledger_events = Table(
    "ledger_events",
    ledger_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("event", String(64), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("role", String(64), nullable=False),
    Column("subject_type", String(64), nullable=False),
    Column("subject_id", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

ledger_checkpoints = Table(
    "ledger_checkpoints",
    ledger_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("signature", Text, nullable=False),
)


def create_tables(engine: Engine) -> None:
    """Create the ledger tables if they do not exist."""
    ledger_metadata.create_all(engine)


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger row; `hash` covers every other field, `prev_hash` included."""

    seq: int
    event: str
    actor: str
    role: str
    subject_type: str
    subject_id: str
    payload: dict
    created_at: str
    prev_hash: str
    hash: str

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the hash is computed over."""
        data = asdict(self)
        data.pop("hash")
        return data

    def compute_hash(self) -> str:
        """SHA-256 of the canonical JSON of `hashed_fields()`."""
        return sha256_hex(canonical_bytes(self.hashed_fields()))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LedgerVerifyResult:
    """`ok`, the number of rows, the first bad seq (None when ok) and why."""

    ok: bool
    count: int
    first_bad_seq: int | None
    reason: str


def _row_to_entry(row: Any) -> LedgerEntry:
    m = row._mapping if hasattr(row, "_mapping") else row
    return LedgerEntry(
        seq=int(m["seq"]), event=m["event"], actor=m["actor"], role=m["role"], subject_type=m["subject_type"],
        subject_id=m["subject_id"], payload=json.loads(m["payload"]), created_at=m["created_at"],
        prev_hash=m["prev_hash"], hash=m["hash"],
    )


def verify_chain(entries: Iterable[LedgerEntry]) -> LedgerVerifyResult:
    """Check numbering, hashes and links of entries in seq order (no head or checkpoint check)."""
    prev, expected, count = GENESIS_HASH, 1, 0
    for entry in entries:
        count += 1
        if entry.seq != expected:
            return LedgerVerifyResult(False, count, expected, f"seq {expected} missing: found seq {entry.seq} next (row deleted or inserted)")
        if entry.compute_hash() != entry.hash:
            return LedgerVerifyResult(False, count, entry.seq, f"seq {entry.seq}: stored hash does not match its contents (row edited, inserted or reordered)")
        if entry.prev_hash != prev:
            return LedgerVerifyResult(False, count, entry.seq, f"seq {entry.seq}: prev_hash does not match seq {entry.seq - 1} (row deleted, inserted or reordered)")
        prev, expected = entry.hash, expected + 1
    return LedgerVerifyResult(True, count, None, f"{count} entries, chain intact")


def _is_busy(exc: DBAPIError) -> bool:
    message = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    return any(s in message for s in ("database is locked", "database table is locked", "busy", "could not serialize", "deadlock"))


class Ledger:
    """Append-only, hash-chained event log in `engine`'s database, signed by the studio key.

    The signed head (`head_path`, outside the database) holds count and last hash; it is rewritten
    atomically, under the same lock as the append, so a cut-off tail is detected by `verify()`."""

    def __init__(
        self, engine: Engine, keys: StudioKeys, head_path: Path | str, *,
        checkpoint_every: int = CHECKPOINT_EVERY, busy_timeout_ms: int = 30_000, retries: int = 50,
    ) -> None:
        self.engine = engine
        self.keys = keys
        self.head_path = Path(head_path)
        self.checkpoint_every = checkpoint_every
        self.busy_timeout_ms = busy_timeout_ms
        self.retries = retries
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise LedgerError(f"database dialect {self.dialect!r}; supported: sqlite, postgresql")

    # ---- locking

    def _begin_locked(self, conn: Connection) -> None:
        """Start a transaction that holds the ledger write lock."""
        if self.dialect == "sqlite":
            # pysqlite's own implicit BEGIN is deferred (it only takes the write lock at the first
            # write, after our SELECT of the tail: two writers then fork or deadlock). An explicit
            # BEGIN IMMEDIATE takes the lock first; sqlite3 sees the open transaction and commit()
            # then commits it.
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.exec_driver_sql("PRAGMA synchronous = FULL")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})

    def _with_lock(self, work, on_error=None):  # type: ignore[no-untyped-def]
        """Run `work(conn)` in a locked transaction and commit, retrying with backoff while busy.
        `on_error(conn)` runs, still under the lock, when the work or the commit fails."""
        delay = 0.005
        for attempt in range(self.retries):
            try:
                with self.engine.connect() as conn:
                    try:
                        self._begin_locked(conn)
                        result = work(conn)
                        conn.commit()
                        return result
                    except BaseException:
                        if on_error is not None:
                            on_error(conn)
                        conn.rollback()
                        raise
            except OperationalError as exc:
                if not _is_busy(exc) or attempt == self.retries - 1:
                    if _is_busy(exc):
                        raise LedgerBusy(f"ledger stayed locked through {self.retries} retries: {exc.orig}") from exc
                    raise
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
        raise LedgerBusy(f"ledger stayed locked through {self.retries} retries")

    # ---- appending

    def append(
        self, event: LedgerEvent | str, actor: str, role: Role | str, subject_type: str, subject_id: str,
        payload: dict | None = None,
    ) -> LedgerEntry:
        """Record one event and return it. Raises PermissionDenied when `role` may not record `event`."""
        checked = self._checked(event, actor, role, subject_type, subject_id, payload)
        state: dict[str, tuple[int, str]] = {}  # per call, so threads sharing a Ledger do not mix
        return self._with_lock(lambda conn: self._insert(conn, state, *checked),
                               on_error=lambda conn: self._restore_head(state))

    def append_with(self, work):  # type: ignore[no-untyped-def]
        """Run `work(conn)` and append the events it returns, in ONE locked transaction: the rows `work`
        writes on `conn` and the events commit together or not at all.

        `work(conn)` returns `(result, events)`, each event a tuple
        `(event, actor, role, subject_type, subject_id, payload)`; returns `(result, entries)`."""
        state: dict[str, tuple[int, str]] = {}

        def locked(conn: Connection):  # type: ignore[no-untyped-def]
            result, events = work(conn)
            checked = [self._checked(*event) for event in events]
            return result, [self._insert(conn, state, *c) for c in checked]

        return self._with_lock(locked, on_error=lambda conn: self._restore_head(state))

    def _checked(self, event, actor, role, subject_type, subject_id, payload):  # type: ignore[no-untyped-def]
        event_value = _event_value(event)
        role_value = role.value if isinstance(role, Role) else str(role)
        payload = dict(payload or {})
        for name, value in (("actor", actor), ("role", role_value), ("subject_type", subject_type), ("subject_id", subject_id)):
            if not isinstance(value, str) or not value.strip():
                raise LedgerError(f"{name} is {value!r}; expected a non-empty string")
        if LedgerEvent(event_value) in DECISION_EVENTS and role_value not in DECIDING_ROLES:
            raise PermissionDenied(
                f"role {role_value!r} (actor {actor!r}) may not record {event_value!r}; "
                f"accepted roles: {sorted(DECIDING_ROLES)}"
            )
        _check_payload(LedgerEvent(event_value), payload)
        try:
            canonical_json(payload)
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"payload {payload!r} is not plain JSON data: {exc}") from exc
        return event_value, actor, role_value, subject_type, subject_id, payload

    def _insert(self, conn: Connection, state: dict, event_value: str, actor: str, role_value: str,
                subject_type: str, subject_id: str, payload: dict) -> LedgerEntry:
        """Append one checked event on `conn`, which holds the write lock; the head follows it."""
        created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
        last = conn.execute(
            select(ledger_events.c.seq, ledger_events.c.hash).order_by(ledger_events.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (int(last.seq) + 1, last.hash) if last else (1, GENESIS_HASH)
        draft = LedgerEntry(seq, event_value, actor, role_value, subject_type, subject_id, payload, created_at, prev, "")
        entry = LedgerEntry(**{**draft.to_dict(), "hash": draft.compute_hash()})
        conn.execute(insert(ledger_events).values(**{**entry.to_dict(), "payload": canonical_json(payload)}))
        if self.checkpoint_every and seq % self.checkpoint_every == 0:
            conn.execute(insert(ledger_checkpoints).values(
                seq=seq, hash=entry.hash, created_at=created_at, public_key=self.keys.public_key_b64,
                signature=self.keys.sign(_checkpoint_bytes(seq, entry.hash)),
            ))
        # Written under the lock, before commit: heads are written in seq order. If the commit
        # fails, `_restore_head` puts back the head of the tail before this transaction.
        state.setdefault("prev_tail", (seq - 1, prev))
        self._write_head(seq, entry.hash)
        return entry

    def _restore_head(self, state: dict) -> None:
        if "prev_tail" in state:  # the transaction failed after the head moved on: put it back
            self._write_head(*state.pop("prev_tail"))

    def _write_head(self, count: int, last_hash: str) -> None:
        body = {"format": HEAD_FORMAT, "count": count, "last_hash": last_hash, "public_key": self.keys.public_key_b64}
        body["signature"] = self.keys.sign(canonical_bytes({k: v for k, v in body.items() if k != "public_key"}))
        atomic_write_bytes(self.head_path, canonical_bytes(body), mode=0o600)

    def _read_head(self) -> dict | None:
        if not self.head_path.exists():
            return None
        return json.loads(self.head_path.read_text("utf-8"))

    # ---- reading

    def events(
        self, subject_type: str | None = None, subject_id: str | None = None, event: LedgerEvent | str | None = None,
    ) -> list[LedgerEntry]:
        """Entries in seq order, optionally filtered."""
        query = select(ledger_events).order_by(ledger_events.c.seq)
        if subject_type is not None:
            query = query.where(ledger_events.c.subject_type == subject_type)
        if subject_id is not None:
            query = query.where(ledger_events.c.subject_id == subject_id)
        if event is not None:
            query = query.where(ledger_events.c.event == _event_value(event))
        with self.engine.connect() as conn:
            return [_row_to_entry(row) for row in conn.execute(query)]

    def count(self) -> int:
        """Number of entries."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(ledger_events)).scalar_one())

    def verify(self) -> LedgerVerifyResult:
        """Check the chain, the signed checkpoints and the signed head; name the first bad seq."""

        def work(conn: Connection) -> tuple[list[LedgerEntry], list[Any], dict | None]:
            rows = [_row_to_entry(r) for r in conn.execute(select(ledger_events).order_by(ledger_events.c.seq))]
            checkpoints = list(conn.execute(select(ledger_checkpoints).order_by(ledger_checkpoints.c.seq)))
            return rows, checkpoints, self._read_head()  # head read under the append lock: consistent

        entries, checkpoints, head = self._with_lock(work)
        result = verify_chain(entries)
        count = len(entries)
        if not result.ok:
            return LedgerVerifyResult(False, count, result.first_bad_seq, result.reason)
        trusted = self.keys.public_key_b64
        by_seq = {e.seq: e for e in entries}
        for cp in checkpoints:
            m = cp._mapping
            if m["public_key"] != trusted or not verify_signature(m["public_key"], m["signature"], _checkpoint_bytes(m["seq"], m["hash"])):
                return LedgerVerifyResult(False, count, int(m["seq"]), f"checkpoint at seq {m['seq']} has an invalid or untrusted signature")
            entry = by_seq.get(int(m["seq"]))
            if entry is None:
                return LedgerVerifyResult(False, count, count + 1, f"signed checkpoint at seq {m['seq']} but the ledger ends at seq {count} (tail truncated)")
            if entry.hash != m["hash"]:
                return LedgerVerifyResult(False, count, int(m["seq"]), f"seq {m['seq']} differs from its signed checkpoint (rewritten chain)")
        if head is None:
            if count == 0:
                return LedgerVerifyResult(True, 0, None, "empty ledger")
            return LedgerVerifyResult(False, count, 1, f"signed head {self.head_path} is missing; cannot rule out truncation")
        head_body = {k: v for k, v in head.items() if k not in ("signature", "public_key")}
        if head.get("public_key") != trusted or not verify_signature(trusted, head.get("signature", ""), canonical_bytes(head_body)):
            return LedgerVerifyResult(False, count, None, f"signed head {self.head_path} has an invalid or untrusted signature")
        head_count = int(head["count"])
        if head_count > count:
            return LedgerVerifyResult(False, count, count + 1, f"signed head records {head_count} entries but the ledger has {count} (tail truncated from seq {count + 1})")
        if head_count < count:
            return LedgerVerifyResult(False, count, head_count + 1, f"entries from seq {head_count + 1} are not covered by the signed head (appended outside the ledger)")
        if count and by_seq[count].hash != head["last_hash"]:
            return LedgerVerifyResult(False, count, count, f"seq {count} differs from the signed head (rewritten chain)")
        return LedgerVerifyResult(True, count, None, f"{count} entries, chain, {len(checkpoints)} checkpoints and signed head intact")

    # ---- CSV

    def export_csv(self, path_or_file: Path | str | TextIO) -> int:
        """Write every entry as CSV (payload as canonical JSON); return the number of rows."""
        entries = self.events()
        if isinstance(path_or_file, (str, Path)):
            buf = io.StringIO()
            _write_csv(buf, entries)
            atomic_write_bytes(Path(path_or_file), buf.getvalue().encode("utf-8"), mode=0o644)
        else:
            _write_csv(path_or_file, entries)
        return len(entries)


CSV_FIELDS = ["seq", "event", "actor", "role", "subject_type", "subject_id", "payload", "created_at", "prev_hash", "hash"]


def _write_csv(handle: TextIO, entries: Iterable[LedgerEntry]) -> None:
    """Cells that a spreadsheet would run as formulas are quoted (``csvsafe``); ``import_csv`` undoes it."""
    write_rows(handle, CSV_FIELDS, ({**e.to_dict(), "payload": canonical_json(e.payload)} for e in entries))


def import_csv(path_or_file: Path | str | TextIO) -> list[LedgerEntry]:
    """Read an `export_csv` file back and check its chain; raise LedgerError naming the first bad line."""
    if isinstance(path_or_file, (str, Path)):
        with open(path_or_file, encoding="utf-8", newline="") as source:  # keep CR inside cells
            handle: TextIO = io.StringIO(source.read(), newline="")
    else:
        handle = path_or_file
    reader = csv.DictReader(handle)
    if reader.fieldnames != CSV_FIELDS:
        raise LedgerError(f"ledger CSV header {reader.fieldnames}; expected {CSV_FIELDS}")
    entries: list[LedgerEntry] = []
    for line_no, row in enumerate(reader, start=2):
        row = {key: restore_cell(value) if isinstance(value, str) else value for key, value in row.items()}
        try:
            entries.append(LedgerEntry(**{**row, "seq": int(row["seq"]), "payload": json.loads(row["payload"])}))
        except (ValueError, TypeError) as exc:
            raise LedgerError(f"ledger CSV line {line_no}: {exc}") from exc
    result = verify_chain(entries)
    if not result.ok:
        raise LedgerError(f"ledger CSV: {result.reason} (line {int(result.first_bad_seq or 0) + 1})")
    return entries


def _checkpoint_bytes(seq: int, entry_hash: str) -> bytes:
    return canonical_bytes({"format": "studio-ledger-checkpoint/1", "seq": int(seq), "hash": entry_hash})


def _event_value(event: LedgerEvent | str) -> str:
    value = event.value if isinstance(event, LedgerEvent) else str(event)
    try:
        return LedgerEvent(value).value
    except ValueError:
        raise LedgerError(f"event {value!r} is unknown; accepted: {[e.value for e in LedgerEvent]}") from None


def _check_payload(event: LedgerEvent, payload: dict) -> None:
    convention = () if event in STYLELESS_EVENTS else CONVENTION_KEYS
    missing = [k for k in dict.fromkeys(convention + REQUIRED_PAYLOAD.get(event, ())) if payload.get(k) in (None, "")]
    if missing:
        raise LedgerError(
            f"{event.value} payload lacks {missing}; every event carries style_id and collection, "
            f"and {event.value} also needs {list(REQUIRED_PAYLOAD.get(event, ())) or 'nothing more'}"
        )
    if event is LedgerEvent.SAMPLE_ORDERED:
        try:
            cost = Decimal(str(payload["cost"]))
        except InvalidOperation:
            cost = Decimal(-1)
        if not cost.is_finite() or cost < 0:
            raise LedgerError(f"sample_ordered cost {payload['cost']!r}; expected a number >= 0")
        currency = payload["currency"]
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise LedgerError(f"sample_ordered currency {currency!r}; expected an ISO 4217 code such as 'EUR'")


def iter_payload_entries(entries: Iterable[Any]) -> Iterator[dict]:
    """Entries as plain dicts (LedgerEntry or dict accepted), for ratios."""
    for e in entries:
        yield e.to_dict() if isinstance(e, LedgerEntry) else dict(e)
