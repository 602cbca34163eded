"""From approval to production: samples (order, then receive or reject), releases, dropped styles,
pre-studio baselines and the ratio report; provenance checks of files; the ledger's audit.

Every act is checked against the access table and written to the ledger. Workflow rules live here:
a sample is ordered only for an approved style and is then received or rejected once; a style is
released only when approved, and only once; a dropped style is not released or dropped again.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select

from ..access import AccessPolicy, Actor
from ..errors import InvalidRequest, NotFound
from ..store import Store
from ..store.governance_tables import Baseline, Sample
from .designs import DesignWriter, StyleContext


@dataclass
class LedgerCheck:
    """``studio ledger verify``: the chain (edits, deletions, truncation) and the designs (events, manifests)."""

    chain_ok: bool
    chain_reason: str
    first_bad_seq: int | None
    problems: list

    @property
    def ok(self) -> bool:
        return self.chain_ok and not self.problems


class ProductionService:
    """Given the store, the design writer (ledger, keys) and the access policy."""

    def __init__(self, store: Store, designs: DesignWriter, access: AccessPolicy):
        self.store = store
        self.designs = designs
        self.access = access

    @property
    def ledger(self):
        return self.designs.ledger

    # ------------------------------------------------------------------ state of a style
    def _style_events(self, ctx: StyleContext, event: str) -> list:
        return [e for e in self.ledger.events(event=event) if e.payload.get("style_id") == ctx.style_id]

    def _approved(self, ctx: StyleContext) -> bool:
        return bool(self._style_events(ctx, "approved"))

    # ------------------------------------------------------------------ samples
    def order_sample(self, design_id: int, supplier: str, material: str, cost, currency: str, *,
                     actor: Actor | None, note: str = "") -> Sample:
        """Order a physical sample of an approved design (ledger: sample_ordered)."""
        actor = self.access.check(actor, "order_sample")
        supplier, material = (supplier or "").strip(), (material or "").strip()
        if not supplier or not material:
            raise InvalidRequest("supplier and material are required to order a sample")
        try:
            amount = Decimal(str(cost).strip())
        except InvalidOperation:
            raise InvalidRequest(f"cost {cost!r} is not a number; expected e.g. 180.00") from None
        if not amount.is_finite() or amount < 0:
            raise InvalidRequest(f"cost {cost!r}; expected a number >= 0")
        currency = (currency or "").strip().upper()
        if not (len(currency) == 3 and currency.isalpha()):
            raise InvalidRequest(f"currency {currency!r}; expected an ISO 4217 code such as EUR")
        design = self.store.design(design_id)
        self.designs.require_recorded(design)
        ctx = self.designs.style_context(design)
        if not self._approved(ctx):
            raise InvalidRequest(f"design {design_id} (style {ctx.style_id}) is not approved; samples are ordered for approved designs")
        if self._style_events(ctx, "style_dropped"):
            raise InvalidRequest(f"style {ctx.style_id} was dropped; no sample is ordered for it")

        def add_row(conn):
            from sqlalchemy.orm import Session

            with Session(bind=conn, expire_on_commit=False) as s:
                sample = Sample(design_id=design.id, style_id=ctx.style_id, collection=ctx.collection,
                                season=ctx.season, supplier=supplier, material=material, cost=str(amount),
                                currency=currency, ordered_by=actor.name, note=note)
                s.add(sample)
                s.flush()
                s.expunge(sample)
            return sample

        # The row and its sample_ordered event commit together; the event's subject is the new row's id.
        def work(conn):
            sample = add_row(conn)
            return sample, [("sample_ordered", actor.name, actor.role, "sample", str(sample.id), ctx.payload(
                design_id=design.id, sample_id=sample.id, supplier=supplier, material=material,
                cost=str(amount), currency=currency))]

        sample, _ = self.designs.commit_with_events(work)
        return sample

    def samples(self, design_id: int | None = None, collection: str | None = None) -> list[Sample]:
        with self.store.sessions() as s:
            q = select(Sample).order_by(Sample.id)
            if design_id is not None:
                q = q.where(Sample.design_id == int(design_id))
            if collection:
                q = q.where(Sample.collection == collection)
            return list(s.scalars(q))

    def _sample_for(self, sample_id: int | None, design_id: int | None) -> Sample:
        with self.store.sessions() as s:
            if sample_id is not None:
                found = s.get(Sample, int(sample_id))
                if found is None:
                    raise NotFound(f"sample {sample_id} does not exist")
                return found
            if design_id is None:
                raise InvalidRequest("give a sample id or a design id")
            found = s.scalar(select(Sample).where(Sample.design_id == int(design_id), Sample.status == "ordered")
                             .order_by(Sample.id.desc()))
            if found is None:
                raise NotFound(f"design {design_id} has no open sample order")
            return found

    def _close_sample(self, event: str, status: str, sample_id, design_id, actor: Actor | None, **extra) -> Sample:
        from sqlalchemy import update

        from ..store.models import utcnow

        actor = self.access.check(actor, "close_sample")
        sample = self._sample_for(sample_id, design_id)
        if sample.status != "ordered":
            raise InvalidRequest(f"sample {sample.id} is already {sample.status}; only an ordered sample is "
                                 "received or rejected, once")
        payload = {"style_id": sample.style_id, "collection": sample.collection, "design_id": sample.design_id,
                   "sample_id": sample.id, **extra}
        if sample.season:
            payload["season"] = sample.season
        note = str(extra.get("reason") or extra.get("note") or "") or sample.note

        def move(conn):
            # Only from "ordered": a second close racing this one changes no row and is refused.
            changed = conn.execute(update(Sample).where(Sample.id == sample.id, Sample.status == "ordered")
                                   .values(status=status, updated_at=utcnow(), note=note)).rowcount
            if changed != 1:
                raise InvalidRequest(f"sample {sample.id} is no longer ordered; nothing was recorded")

        self.designs.append(event, actor, "sample", str(sample.id), payload, work=move)
        return self._sample_for(sample.id, None)

    def receive_sample(self, sample_id: int | None = None, *, design_id: int | None = None,
                       actor: Actor | None, note: str = "") -> Sample:
        """Mark a sample received (ledger: sample_received)."""
        return self._close_sample("sample_received", "received", sample_id, design_id, actor, note=note)

    def reject_sample(self, sample_id: int | None = None, *, design_id: int | None = None,
                      actor: Actor | None, reason: str = "") -> Sample:
        """Mark a sample rejected (ledger: sample_rejected)."""
        return self._close_sample("sample_rejected", "rejected", sample_id, design_id, actor, reason=reason)

    # ------------------------------------------------------------------ release and drop
    def release_to_production(self, design_id: int, sku: str, *, actor: Actor | None):
        """Release an approved style to production under a SKU, once (creative directors and admins)."""
        actor = self.access.check(actor, "release")
        sku = (sku or "").strip()
        if not sku:
            raise InvalidRequest("sku is empty; give the production SKU")
        design = self.store.design(design_id)
        self.designs.require_recorded(design)
        ctx = self.designs.style_context(design)
        if not self._approved(ctx):
            raise InvalidRequest(f"design {design_id} (style {ctx.style_id}) is not approved; "
                                 "only an approved style is released to production")
        released = self._style_events(ctx, "released_to_production")
        if released:
            raise InvalidRequest(f"style {ctx.style_id} was already released as {released[0].payload.get('sku')!r} "
                                 f"(ledger seq {released[0].seq}); a style is released once")
        if self._style_events(ctx, "style_dropped"):
            raise InvalidRequest(f"style {ctx.style_id} was dropped; a dropped style is not released")
        return self.designs.record("released_to_production", design.id, actor, "release", sku=sku)

    def drop_style(self, design_id: int, *, actor: Actor | None, reason: str = ""):
        """Drop a style (ledger: style_dropped); creative directors and admins only."""
        actor = self.access.check(actor, "drop")
        design = self.store.design(design_id)
        ctx = self.designs.style_context(design)
        if self._style_events(ctx, "style_dropped"):
            raise InvalidRequest(f"style {ctx.style_id} is already dropped")
        if self._style_events(ctx, "released_to_production"):
            raise InvalidRequest(f"style {ctx.style_id} is already released to production; it cannot be dropped")
        return self.designs.record("style_dropped", design.id, actor, "drop", reason=reason)

    # ------------------------------------------------------------------ ratios and baselines
    def baselines(self):
        from brand_guard.ratios import Baseline as RatioBaseline

        with self.store.sessions() as s:
            rows = list(s.scalars(select(Baseline).order_by(Baseline.collection, Baseline.season)))
        return [RatioBaseline(r.collection, r.season, r.samples_per_style, r.days_to_approval) for r in rows]

    def set_baseline(self, collection: str, season: str, samples_per_style: float, days_to_approval: float, *,
                     actor: Actor | None) -> None:
        """Enter or replace a collection's pre-studio baseline (creative directors and admins; ledger: baseline_set)."""
        actor = self.access.check(actor, "set_baseline")
        collection, season = (collection or "").strip(), (season or "").strip()
        if not collection:
            raise InvalidRequest("collection is empty; give the collection the baseline belongs to")
        numbers = []
        for name, value in (("samples_per_style", samples_per_style), ("days_to_approval", days_to_approval)):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not number > 0 or number == float("inf"):
                raise InvalidRequest(f"{name} {value!r}; expected a positive number")
            numbers.append(number)

        def save(conn):
            from sqlalchemy.orm import Session

            with Session(bind=conn) as s:
                row = s.scalar(select(Baseline).where(Baseline.collection == collection, Baseline.season == season))
                if row is None:
                    row = Baseline(collection=collection, season=season)
                    s.add(row)
                row.samples_per_style, row.days_to_approval = numbers
                row.created_by = actor.name
                s.flush()

        payload = {"collection": collection, "samples_per_style": numbers[0], "days_to_approval": numbers[1]}
        if season:
            payload["season"] = season
        self.designs.append("baseline_set", actor, "baseline", f"{collection}/{season}", payload, work=save)

    def import_baselines(self, path: str | Path, *, actor: Actor | None) -> int:
        """Import baselines from CSV (collection,season,samples_per_style,days_to_approval); all checked first."""
        from brand_guard.errors import RatiosError
        from brand_guard.ratios import load_baselines_csv

        self.access.check(actor, "set_baseline")
        try:
            rows = load_baselines_csv(Path(path))
        except (RatiosError, OSError) as exc:
            raise InvalidRequest(str(exc)) from None
        for b in rows:
            self.set_baseline(b.collection, b.season, b.samples_per_style, b.days_to_approval, actor=actor)
        return len(rows)

    def _style_events_all(self) -> list:
        return [e for e in self.ledger.events() if e.event != "baseline_set"]

    def ratio_rows(self, collection: str | None = None, season: str | None = None) -> list[dict]:
        from brand_guard.ratios import report_rows

        return report_rows(self._style_events_all(), self.baselines(), collection or None, season or None)

    def ratio_report(self, collection: str | None = None, season: str | None = None, format: str = "csv") -> str:
        from brand_guard.errors import RatiosError
        from brand_guard.ratios import report

        try:
            return report(self._style_events_all(), self.baselines(), collection or None, season or None, format=format)
        except RatiosError as exc:
            raise InvalidRequest(str(exc)) from None

    # ------------------------------------------------------------------ checks
    def verify_ledger(self) -> LedgerCheck:
        """The hash chain, checkpoints and signed head, then every design against its event and manifest."""
        result = self.ledger.verify()
        return LedgerCheck(result.ok, result.reason, result.first_bad_seq, self.designs.audit())

    def verify_file(self, path: str | Path, trust: list[str] | None = None):
        """Provenance check of a PNG/GLB against the studio's public key (plus any trusted keys given)."""
        from brand_guard.provenance import verify_file

        path = Path(path)
        if not path.is_file():
            raise InvalidRequest(f"file {str(path)!r} does not exist")
        return verify_file(path, [self.designs.keys.public_key_b64, *(trust or [])])

    def c2pa_status(self, path: str | Path) -> dict:
        """{'status': 'absent' | 'valid' | 'invalid' | 'unavailable' | 'not-png', 'detail': ...} for a file."""
        from brand_guard.errors import ProvenanceError

        path = Path(path)
        if not path.is_file():
            raise InvalidRequest(f"file {str(path)!r} does not exist")
        data = path.read_bytes()
        if data[:8] != b"\x89PNG\r\n\x1a\n":
            return {"status": "not-png", "detail": "C2PA is checked on PNG files only (GLB carries the signed sidecar)"}
        try:
            from brand_guard.c2pa_sign import c2pa_summary

            status, detail = c2pa_summary(data)
        except ProvenanceError as exc:
            return {"status": "unavailable", "detail": str(exc)}
        return {"status": status, "detail": detail}
