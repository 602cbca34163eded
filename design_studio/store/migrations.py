"""Numbered schema migrations; ``migrate`` brings any database up to the newest version."""
from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.engine import Engine

from .models import Base

_meta = MetaData()
schema_version = Table("schema_version", _meta, Column("version", Integer, nullable=False))


def _m001_initial(conn) -> None:
    Base.metadata.create_all(conn, tables=[Base.metadata.tables["projects"], Base.metadata.tables["designs"]])


def _m002_team(conn) -> None:
    """Users, shortlist entries and review decisions (``Design.status`` already exists)."""
    tables = Base.metadata.tables
    Base.metadata.create_all(conn, tables=[tables["users"], tables["shortlist_entries"], tables["decisions"]])


def _m006_governance(conn) -> None:
    """designs.uid (unique, backfilled), samples, ratio_baselines, and the ledger's tables.

    Idempotent: a database created by migration 1 from the current models already has designs.uid."""
    import uuid

    from sqlalchemy import inspect, text

    from brand_guard.ledger import ledger_metadata

    columns = {c["name"] for c in inspect(conn).get_columns("designs")}
    if "uid" not in columns:
        conn.execute(text("ALTER TABLE designs ADD COLUMN uid VARCHAR(32)"))
    for (design_id,) in conn.execute(text("SELECT id FROM designs WHERE uid IS NULL")).all():
        conn.execute(text("UPDATE designs SET uid = :u WHERE id = :i"), {"u": uuid.uuid4().hex, "i": design_id})
    conn.execute(text("CREATE UNIQUE INDEX IF NOT EXISTS ix_designs_uid ON designs (uid)"))
    Base.metadata.create_all(conn, tables=[Base.metadata.tables["samples"], Base.metadata.tables["ratio_baselines"]])
    ledger_metadata.create_all(conn)


#: Append new migrations at the end; never edit one that has shipped.
MIGRATIONS = [_m001_initial, _m002_team, _m006_governance]


def migrate(engine: Engine) -> int:
    """Apply every migration not yet applied, each in its own transaction; return the version."""
    _meta.create_all(engine)
    with engine.begin() as conn:
        current = conn.execute(select(schema_version.c.version)).scalar()
        if current is None:
            conn.execute(schema_version.insert().values(version=0))
            current = 0
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= current:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(schema_version.update().values(version=number))
        current = number
    return current
