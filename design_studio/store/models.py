"""Tables of the design store (SQLAlchemy 2.0 declarative)."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    """A collection, e.g. 'SS27 handbags', with a brief."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    brief: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    designs: Mapped[list["Design"]] = relationship(back_populates="project")


class Design(Base):
    """One output (a concept image or a mesh) and everything needed to reproduce it."""

    __tablename__ = "designs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # image | mesh
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("designs.id"), index=True, default=None)
    prompt: Mapped[str] = mapped_column(Text, default="")
    negative_prompt: Mapped[str] = mapped_column(Text, default="")
    seed: Mapped[int | None] = mapped_column(Integer, default=None)
    model: Mapped[str] = mapped_column(String(300), default="")
    revision: Mapped[str] = mapped_column(String(100), default="")
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    file: Mapped[str] = mapped_column(String(500))  # path relative to the files dir
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(32), default="draft")
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # Known before the row exists, so the watermark and signed provenance can carry it (migration 6).
    uid: Mapped[str | None] = mapped_column(String(32), unique=True, index=True, default=lambda: uuid.uuid4().hex)

    project: Mapped[Project] = relationship(back_populates="designs")
    parent: Mapped["Design | None"] = relationship(remote_side=[id])


# --------------------------------------------------------------------------- team (migration 2)
#: Workflow of a design; the only transitions are those in ``STATUS_TRANSITIONS``.
DESIGN_STATUSES = ("draft", "shortlisted", "approved", "rejected", "changes_requested")
STATUS_TRANSITIONS = {
    "draft": {"shortlisted"},
    "changes_requested": {"shortlisted"},
    "shortlisted": {"approved", "rejected", "changes_requested"},
    "approved": set(),
    "rejected": set(),
}
ROLES = ("designer", "creative_director", "admin")


class User(Base):
    """A local account; the password is kept only as a slow-KDF hash (see ``design_studio.access``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(32))  # one of ROLES
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ShortlistEntry(Base):
    """A design a designer put forward for review (one entry per design)."""

    __tablename__ = "shortlist_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    design_id: Mapped[int] = mapped_column(ForeignKey("designs.id"), unique=True)
    added_by: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)

    design: Mapped[Design] = relationship()


class Decision(Base):
    """One review act on a design: shortlisted, approved, rejected or changes_requested, with who and why."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    design_id: Mapped[int] = mapped_column(ForeignKey("designs.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    comment: Mapped[str] = mapped_column(Text, default="")
    actor: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


from .governance_tables import Baseline, Sample  # noqa: E402,F401  (tables of migration 6)
