"""Tables of the brand guard's application side (migration 6): physical samples and ratio baselines."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class Sample(Base):
    """A physical sample ordered from a supplier for a design; its life is also in the ledger."""

    __tablename__ = "samples"

    id: Mapped[int] = mapped_column(primary_key=True)
    design_id: Mapped[int] = mapped_column(ForeignKey("designs.id"), index=True)
    style_id: Mapped[str] = mapped_column(String(64), index=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    season: Mapped[str] = mapped_column(String(40), default="")
    supplier: Mapped[str] = mapped_column(String(200))
    material: Mapped[str] = mapped_column(String(200))
    cost: Mapped[str] = mapped_column(String(40))  # decimal as text: exact money, any database
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), default="ordered")  # ordered | received | rejected
    note: Mapped[str] = mapped_column(Text, default="")
    ordered_by: Mapped[str] = mapped_column(String(100), default="")
    ordered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Baseline(Base):
    """Pre-studio figures for a collection (season '' = every season), entered by an admin or imported."""

    __tablename__ = "ratio_baselines"
    __table_args__ = (UniqueConstraint("collection", "season", name="uq_baseline_collection_season"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection: Mapped[str] = mapped_column(String(200))
    season: Mapped[str] = mapped_column(String(40), default="")
    samples_per_style: Mapped[float] = mapped_column(Float)
    days_to_approval: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
