"""Brand guard in the studio: provenance on every output, the decision ledger, samples and releases,
the encrypted vault, near-copy checks before shortlisting, private LoRA training."""
from __future__ import annotations

import json
import os
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select

from ..errors import InvalidRequest, NotFound, StudioError
from ..store import Design, transaction
from ..store.governance_tables import Baseline, Sample
from .base import SOLO_ACTOR, ProgressFn, translate_errors

PASSPHRASE_ENV = "STUDIO_VAULT_PASSPHRASE"
DECIDING_ROLES = ("creative_director", "admin")
ROLES = ("designer", "creative_director", "admin", "system")
LEDGER_HEAD = "ledger.head.json"


class RoleRefused(StudioError):
    """The actor's role may not do this (e.g. a designer releasing to production)."""


class NearCopyBlocked(StudioError):
    """A design flagged as a near-copy of a vault image cannot be shortlisted without an override."""


class VaultLocked(StudioError):
    """The vault cannot be opened: no passphrase given, or the wrong one."""


def _check_role(role: str) -> str:
    role = (role or "").strip()
    if role not in ROLES:
        raise InvalidRequest(f"role {role!r} is unknown; accepted: {', '.join(ROLES)}")
    return role


def _check_actor(actor: str) -> str:
    actor = (actor or "").strip()
    if not actor:
        raise InvalidRequest("actor is empty; give the name of the person acting")
    return actor


@dataclass
class StyleContext:
    """What every ledger event about a design carries: its style (root design), collection and season."""

    style_id: str
    collection: str
    season: str

    def payload(self, **extra) -> dict:
        data = {"style_id": self.style_id, "collection": self.collection, **extra}
        if self.season:
            data["season"] = self.season
        return data


class VaultAdapterSource:
    """LoRA adapters kept encrypted in the vault, looked up by name for the generation path."""

    def __init__(self, vault, actor: str = "studio"):
        self.vault = vault
        self.actor = actor

    def names(self) -> list[str]:
        return sorted(self.vault.blobs(kind="adapter"))

    def load(self, name: str):
        """The adapter's weights (``pipelines.adapters.AdapterWeights``), decrypted in memory; the read is logged."""
        import hashlib

        from brand_guard.errors import BrandGuardError
        from pipelines.adapters import AdapterWeights
        from safetensors.torch import load as load_safetensors

        try:
            data = self.vault.read_blob(name, actor=self.actor, purpose="generation")
        except BrandGuardError as exc:
            raise NotFound(str(exc)) from None
        return AdapterWeights(name=name, sha256=hashlib.sha256(data).hexdigest(), state_dict=load_safetensors(data))


class GovernanceMixin:
    """Mixed into ``Studio``; uses ``self.settings`` and ``self.store``."""

    _gov_lock = threading.RLock()

    # ------------------------------------------------------------------ keys and ledger
    @property
    def keys(self):
        """The studio's Ed25519 signing key (created in ``settings.key_dir`` on first use)."""
        if getattr(self, "_studio_keys", None) is None:
            from brand_guard.provenance import StudioKeys

            with self._gov_lock:
                if getattr(self, "_studio_keys", None) is None:
                    self._studio_keys = StudioKeys.load_or_create(self.settings.key_dir)
        return self._studio_keys

    @property
    def ledger(self):
        """The hash-chained decision ledger in the studio database; its signed head sits in the data dir."""
        if getattr(self, "_ledger", None) is None:
            from brand_guard.ledger import Ledger, create_tables

            with self._gov_lock:
                if getattr(self, "_ledger", None) is None:
                    create_tables(self.store.engine)  # migration 6 made them; a no-op then
                    self._ledger = Ledger(self.store.engine, self.keys, self.settings.data_dir / LEDGER_HEAD)
        return self._ledger

    def _append(self, event: str, actor: str, role: str, subject_type: str, subject_id: str, payload: dict):
        from brand_guard.errors import LedgerError, PermissionDenied

        try:
            return self.ledger.append(event, actor, role, subject_type, subject_id, payload)
        except PermissionDenied as exc:
            raise RoleRefused(str(exc)) from None
        except LedgerError as exc:
            raise InvalidRequest(str(exc)) from None

    def style_context(self, design: Design | int) -> StyleContext:
        """Style = the root design of the lineage; collection = its project; season from the root's params."""
        design_id = design.id if isinstance(design, Design) else int(design)
        root = self.store.lineage(design_id)[0]
        with self.store.sessions() as s:
            from ..store import Project

            project = s.get(Project, root.project_id)
        season = str((root.params or {}).get("season") or "")
        return StyleContext(str(root.id), project.name if project else "", season)

    def record_design_event(self, event: str, design_id: int, actor: str, role: str, **payload):
        """Append a ledger event about a design (shortlisted, approved, …) with the style convention filled in."""
        actor, role = _check_actor(actor), _check_role(role)
        design = self.store.design(design_id)
        ctx = self.style_context(design)
        return self._append(event, actor, role, "design", str(design.id), ctx.payload(uid=design.uid, **payload))

    # ------------------------------------------------------------------ provenance hooks
    def _new_uid(self) -> str:
        return uuid.uuid4().hex

    def _governance_params(self) -> dict:
        """Extra params every new design carries (the season, when the studio works in one)."""
        return {"season": self.settings.season} if self.settings.season else {}

    def _record(self, fields: dict):
        from brand_guard.provenance import ProvenanceRecord

        data = dict(fields)
        data["design_id"] = data.pop("design_uid", None) or data.get("design_id")
        data["actor"] = data.get("actor") or SOLO_ACTOR
        data["seed"] = None if data.get("seed") is None else int(data["seed"])
        data["params"] = json.loads(json.dumps(data.get("params") or {}, default=str))
        return ProvenanceRecord.from_dict(data)

    def _stamp_png(self, image, record_fields: dict, extra_meta: dict | None = None) -> bytes:
        """PNG bytes with watermark, embedded signed record, (optionally) the studio's ``studio:*`` params
        and, when a certificate is configured, a C2PA manifest added last over the final bytes."""
        import io

        from PIL import Image, PngImagePlugin

        from brand_guard.provenance import stamp_png

        record = self._record(record_fields)
        data = stamp_png(image, record, self.keys)
        if extra_meta:
            # Add the plain parameter chunks (read_png_metadata) beside the signed ones; pixels are unchanged.
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                info = PngImagePlugin.PngInfo()
                for key, value in im.text.items():
                    info.add_itxt(key, value)
                for key, value in extra_meta.items():
                    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                    if "studio:" + key not in im.text:
                        info.add_itxt("studio:" + key, text)
                info.add_itxt("studio:params", json.dumps(extra_meta, sort_keys=True, ensure_ascii=False))
                buf = io.BytesIO()
                im.save(buf, format="PNG", pnginfo=info)
            data = buf.getvalue()
        signer = self._c2pa_signer()
        # Last: C2PA hashes the bytes around its own chunk, so nothing may rewrite the PNG afterwards.
        return signer.sign_png(data, record) if signer is not None else data

    def _c2pa_signer(self):
        """The C2PA signer when ``c2pa_cert`` and ``c2pa_key`` are configured, else None."""
        if self.settings.c2pa_cert is None or self.settings.c2pa_key is None:
            return None
        from brand_guard.c2pa_sign import C2paSigner

        return C2paSigner.from_files(self.settings.c2pa_cert, self.settings.c2pa_key, alg=self.settings.c2pa_alg)

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

    def _stamp_glb(self, glb_bytes: bytes, record_fields: dict) -> bytes:
        from brand_guard.provenance import stamp_glb

        return stamp_glb(glb_bytes, self._record(dict(record_fields, kind=record_fields.get("kind", "mesh"))))

    def _embedded_record(self, path: Path):
        from brand_guard.provenance import PNG_RECORD_KEY, ProvenanceRecord, read_glb_provenance, read_png_provenance

        data = path.read_bytes()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            raw = read_png_provenance(data)[0].get(PNG_RECORD_KEY)
            record = json.loads(raw) if raw else None
        else:
            record = read_glb_provenance(data)
        return ProvenanceRecord.from_dict(record) if record else None

    def _after_designs_created(self, designs: list[Design], actor: str, role: str = "designer") -> None:
        """Signed manifest beside each stored file and one ``design_created`` ledger event per design."""
        from brand_guard.provenance import write_manifest

        for design in designs:
            path = self.store.file_path(design)
            record = self._embedded_record(path)
            if record is not None:
                write_manifest(path, record, self.keys)
            ctx = self.style_context(design)
            self._append("design_created", actor or SOLO_ACTOR, role or "designer", "design", str(design.id),
                         ctx.payload(uid=design.uid, kind=design.kind, parent_id=design.parent_id, sha256=design.sha256))

    def verify_file(self, path: str | Path, trust: list[str] | None = None):
        """Provenance check of a PNG/GLB against the studio's public key (plus any trusted keys given)."""
        from brand_guard.provenance import verify_file

        path = Path(path)
        if not path.is_file():
            raise InvalidRequest(f"file {str(path)!r} does not exist")
        return verify_file(path, [self.keys.public_key_b64, *(trust or [])])

    # ------------------------------------------------------------------ vault
    def open_vault(self, passphrase: str | None = None, *, create: bool = False):
        """The vault, unlocked by ``passphrase`` or ``STUDIO_VAULT_PASSPHRASE``; ``create`` makes a new one."""
        from brand_guard.errors import VaultError, WrongPassphrase
        from brand_guard.vault import KDF_FILE, VAULT_FILE, Vault, VaultKey

        passphrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        if not passphrase:
            raise VaultLocked(f"no vault passphrase: set {PASSPHRASE_ENV} or type it when asked")
        root = self.settings.resolved_vault_dir
        try:
            if not (root / VAULT_FILE).exists():
                if not create:
                    raise VaultLocked(f"there is no vault at {root} yet; add images with `studio vault add DIR --collection NAME`")
                root.mkdir(parents=True, exist_ok=True)
                return Vault.create(root, VaultKey.from_passphrase(passphrase, root / KDF_FILE))
            return Vault.unlock(root, passphrase)
        except WrongPassphrase:
            raise VaultLocked(f"wrong vault passphrase for {root}; nothing was decrypted") from None
        except VaultError as exc:
            raise InvalidRequest(str(exc)) from None

    def vault_exists(self) -> bool:
        from brand_guard.vault import VAULT_FILE

        return (self.settings.resolved_vault_dir / VAULT_FILE).exists()

    def vault_adapter_source(self, passphrase: str | None = None, actor: str = "studio") -> VaultAdapterSource:
        return VaultAdapterSource(self.open_vault(passphrase), actor=actor)

    def vault_adapter_source_if_unlocked(self) -> VaultAdapterSource | None:
        """The vault's adapters when a vault exists and its passphrase is set, else None (cached per vault state)."""
        if not self.vault_exists() or not os.environ.get(PASSPHRASE_ENV):
            return None
        version = self._vault_version()
        cached = getattr(self, "_vault_adapter_cache", None)
        if cached is None or cached[0] != version:
            cached = (version, self.vault_adapter_source())
            self._vault_adapter_cache = cached
        return cached[1]

    # ------------------------------------------------------------------ near-copy
    def _vault_version(self) -> tuple:
        root = self.settings.resolved_vault_dir
        stats = []
        for path in sorted(root.glob("index.g*.enc")) + [root / "vault.json"]:
            if path.exists():
                st = path.stat()
                stats.append((path.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stats)

    def near_copy_index(self, passphrase: str | None = None, actor: str = "studio"):
        """Perceptual-hash index of the vault, cached in memory and rebuilt when the vault changes."""
        from brand_guard.memorization import NearCopyIndex

        version = self._vault_version()
        cached = getattr(self, "_near_copy_cache", None)
        if cached and cached[0] == version and cached[1].threshold == self.settings.near_copy_threshold:
            return cached[1]
        vault = self.open_vault(passphrase)
        index = NearCopyIndex.from_vault(vault, actor=actor, purpose="near-copy index",
                                         threshold=self.settings.near_copy_threshold)
        self._near_copy_cache = (self._vault_version(), index)
        return index

    def check_near_copy(self, design_id: int, *, passphrase: str | None = None, actor: str = "studio"):
        """Compare a design's image (a mesh: its source image) with the vault; store the flag in its params."""
        from PIL import Image

        design = self.store.design(design_id)
        image_design = design
        while image_design.kind != "image" and image_design.parent_id is not None:
            image_design = self.store.design(image_design.parent_id)
        if image_design.kind != "image":
            raise InvalidRequest(f"design {design_id} has no image to compare with the vault")
        if not self.vault_exists():
            return None
        index = self.near_copy_index(passphrase, actor)
        with Image.open(self.store.file_path(image_design)) as im:
            im.load()
            result = index.check(im.convert("RGB"))
        with transaction(self.store.sessions) as s:
            row = s.get(Design, design.id)
            params = dict(row.params or {})
            flags = [f for f in params.get("flags", []) if f.get("kind") != "near_copy"]
            if result.flagged:
                flags.append({"kind": "near_copy", "vault_item": result.best_item_id, "distance": result.distance,
                              "threshold": result.threshold, "reason": result.reason()})
            params["flags"] = flags
            row.params = params
        return result

    def shortlist_guard(self, design_id: int, actor: str, role: str, override_reason: str | None = None,
                        *, passphrase: str | None = None):
        """Call before shortlisting: refuses a near-copy unless a creative director overrides with a reason."""
        actor, role = _check_actor(actor), _check_role(role)
        result = self.check_near_copy(design_id, passphrase=passphrase, actor=actor)
        if result is None or not result.flagged:
            return result
        reason = (override_reason or "").strip()
        if not reason:
            raise NearCopyBlocked(
                f"design {design_id} is flagged: {result.reason()}; a creative director must override it with a reason"
            )
        if role not in DECIDING_ROLES:
            raise RoleRefused(f"role {role!r} cannot override a near-copy flag; accepted: {', '.join(DECIDING_ROLES)}")
        self.record_design_event("flag_overridden", design_id, actor, role, reason=reason, flag="near_copy",
                                 vault_item=result.best_item_id, distance=result.distance)
        return result

    # ------------------------------------------------------------------ samples and production
    def _approved(self, ctx: StyleContext) -> bool:
        for entry in self.ledger.events(event="approved"):
            if entry.payload.get("style_id") == ctx.style_id:
                return True
        return False

    def order_sample(self, design_id: int, supplier: str, material: str, cost, currency: str, *,
                     actor: str, role: str, note: str = "") -> Sample:
        """Order a physical sample of an approved design (ledger: sample_ordered)."""
        actor, role = _check_actor(actor), _check_role(role)
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
        ctx = self.style_context(design)
        if not self._approved(ctx):
            raise InvalidRequest(f"design {design_id} (style {ctx.style_id}) is not approved; samples are ordered for approved designs")
        with transaction(self.store.sessions) as s:
            sample = Sample(design_id=design.id, style_id=ctx.style_id, collection=ctx.collection, season=ctx.season,
                            supplier=supplier, material=material, cost=str(amount), currency=currency,
                            ordered_by=actor, note=note)
            s.add(sample)
        # The ledger appends under its own write lock (BEGIN IMMEDIATE), so the row is committed first and
        # removed again if the event is refused: no sample exists that the ledger does not know.
        try:
            self._append("sample_ordered", actor, role, "sample", str(sample.id), ctx.payload(
                design_id=design.id, sample_id=sample.id, supplier=supplier, material=material,
                cost=str(amount), currency=currency))
        except BaseException:
            with transaction(self.store.sessions) as s:
                s.delete(s.get(Sample, sample.id))
            raise
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

    def _close_sample(self, event: str, status: str, sample_id, design_id, actor, role, **extra) -> Sample:
        from ..store.models import utcnow

        actor, role = _check_actor(actor), _check_role(role)
        sample = self._sample_for(sample_id, design_id)
        if sample.status != "ordered":
            raise InvalidRequest(f"sample {sample.id} is already {sample.status}")
        payload = {"style_id": sample.style_id, "collection": sample.collection, "design_id": sample.design_id,
                   "sample_id": sample.id, **extra}
        if sample.season:
            payload["season"] = sample.season
        self._append(event, actor, role, "sample", str(sample.id), payload)  # the ledger first: it is the record
        with transaction(self.store.sessions) as s:
            row = s.get(Sample, sample.id)
            row.status, row.updated_at = status, utcnow()
            if extra.get("reason") or extra.get("note"):
                row.note = str(extra.get("reason") or extra.get("note"))
            return row

    def receive_sample(self, sample_id: int | None = None, *, design_id: int | None = None, actor: str, role: str,
                       note: str = "") -> Sample:
        """Mark a sample received (ledger: sample_received)."""
        return self._close_sample("sample_received", "received", sample_id, design_id, actor, role, note=note)

    def reject_sample(self, sample_id: int | None = None, *, design_id: int | None = None, actor: str, role: str,
                      reason: str = "") -> Sample:
        """Mark a sample rejected (ledger: sample_rejected)."""
        return self._close_sample("sample_rejected", "rejected", sample_id, design_id, actor, role, reason=reason)

    def release_to_production(self, design_id: int, sku: str, *, actor: str, role: str):
        """Release a style to production under a SKU; creative directors and admins only."""
        actor, role = _check_actor(actor), _check_role(role)
        if role not in DECIDING_ROLES:
            raise RoleRefused(f"role {role!r} cannot release to production; accepted: {', '.join(DECIDING_ROLES)}")
        sku = (sku or "").strip()
        if not sku:
            raise InvalidRequest("sku is empty; give the production SKU")
        return self.record_design_event("released_to_production", design_id, actor, role, sku=sku)

    def drop_style(self, design_id: int, *, actor: str, role: str, reason: str = ""):
        """Drop a style (ledger: style_dropped); creative directors and admins only."""
        actor, role = _check_actor(actor), _check_role(role)
        if role not in DECIDING_ROLES:
            raise RoleRefused(f"role {role!r} cannot drop a style; accepted: {', '.join(DECIDING_ROLES)}")
        return self.record_design_event("style_dropped", design_id, actor, role, reason=reason)

    # ------------------------------------------------------------------ ratios and baselines
    def baselines(self):
        from brand_guard.ratios import Baseline as RatioBaseline

        with self.store.sessions() as s:
            rows = list(s.scalars(select(Baseline).order_by(Baseline.collection, Baseline.season)))
        return [RatioBaseline(r.collection, r.season, r.samples_per_style, r.days_to_approval) for r in rows]

    def set_baseline(self, collection: str, season: str, samples_per_style: float, days_to_approval: float, *,
                     actor: str, role: str) -> None:
        """Enter or replace a collection's pre-studio baseline (admins and creative directors)."""
        actor, role = _check_actor(actor), _check_role(role)
        if role not in DECIDING_ROLES:
            raise RoleRefused(f"role {role!r} cannot set baselines; accepted: {', '.join(DECIDING_ROLES)}")
        collection, season = (collection or "").strip(), (season or "").strip()
        if not collection:
            raise InvalidRequest("collection is empty; give the collection the baseline belongs to")
        for name, value in (("samples_per_style", samples_per_style), ("days_to_approval", days_to_approval)):
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = float("nan")
            if not number > 0 or number == float("inf"):
                raise InvalidRequest(f"{name} {value!r}; expected a positive number")
        with transaction(self.store.sessions) as s:
            row = s.scalar(select(Baseline).where(Baseline.collection == collection, Baseline.season == season))
            if row is None:
                row = Baseline(collection=collection, season=season)
                s.add(row)
            row.samples_per_style, row.days_to_approval = float(samples_per_style), float(days_to_approval)
            row.created_by = actor

    def import_baselines(self, path: str | Path, *, actor: str, role: str) -> int:
        """Import baselines from CSV (collection,season,samples_per_style,days_to_approval); all or nothing."""
        from brand_guard.errors import RatiosError
        from brand_guard.ratios import load_baselines_csv

        try:
            rows = load_baselines_csv(Path(path))
        except (RatiosError, OSError) as exc:
            raise InvalidRequest(str(exc)) from None
        for b in rows:
            self.set_baseline(b.collection, b.season, b.samples_per_style, b.days_to_approval, actor=actor, role=role)
        return len(rows)

    def ratio_rows(self, collection: str | None = None, season: str | None = None) -> list[dict]:
        from brand_guard.ratios import report_rows

        return report_rows(self.ledger.events(), self.baselines(), collection or None, season or None)

    def ratio_report(self, collection: str | None = None, season: str | None = None, format: str = "csv") -> str:
        from brand_guard.errors import RatiosError
        from brand_guard.ratios import report

        try:
            return report(self.ledger.events(), self.baselines(), collection or None, season or None, format=format)
        except RatiosError as exc:
            raise InvalidRequest(str(exc)) from None

    # ------------------------------------------------------------------ private LoRA training
    def train_lora(self, collection: str, name: str, *, steps: int = 200, rank: int = 4, lr: float = 1e-4,
                   caption_template: str = "a {collection} design", resolution: int | None = None, seed: int = 0,
                   actor: str, passphrase: str | None = None, on_progress: ProgressFn | None = None):
        """Fine-tune a LoRA on a vault collection, decrypted in memory only; the adapter goes back into the vault."""
        from .. import catalog

        actor = _check_actor(actor)
        name = (name or "").strip()
        if not name or any(c in name for c in "/\\\0") or len(name) > 100:
            raise InvalidRequest(f"adapter name {name!r}; expected 1–100 characters without slashes")
        for label, value, lo, hi in (("steps", steps, 1, 100_000), ("rank", rank, 1, 256)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidRequest(f"{label} {value!r}; expected a whole number from {lo} to {hi}")
        if not (isinstance(lr, (int, float)) and 0 < lr < 1):
            raise InvalidRequest(f"lr {lr!r}; expected a number between 0 and 1, e.g. 1e-4")
        try:
            caption = caption_template.format(collection=collection)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidRequest(f"caption template {caption_template!r}: {exc}; use {{collection}} only") from None
        vault = self.open_vault(passphrase)
        if not vault.list(collection):
            raise InvalidRequest(f"collection {collection!r} has no images in the vault; known: {sorted(vault.counts())}")
        entry, path = catalog.require(self.settings.profile, "concept", self.settings.resolved_models_dir)
        self._check_model_path(path)
        items = vault.read(collection, actor=actor, purpose="lora-training")  # decrypted in memory, logged
        from pipelines.lora import LoraTrainingConfig, load_training_components, train_lora

        size = resolution or int(self.defaults["width"])
        config = LoraTrainingConfig(steps=steps, rank=rank, lr=float(lr), resolution=size, seed=seed,
                                    device=self.device)
        report = None
        if on_progress is not None:
            def report(step: int, total: int, loss: float) -> None:
                on_progress(step / total, f"step {step} of {total}, loss {loss:.4f}")
        with translate_errors():
            components = load_training_components(path, device=self.device)
            result = train_lora(components, [im for _, im in items], [caption] * len(items), config, on_step=report)
        del items
        vault.add_blob(name, result.safetensors_bytes, kind="adapter", actor=actor)
        return result

    def _check_model_path(self, path: Path) -> None:
        """Guarded mode: a model folder with pickles or remote code is refused before from_pretrained."""
        if not self.settings.guarded:
            return
        from brand_guard.egress import check_model_dir
        from brand_guard.errors import UnsafeModel

        try:
            check_model_dir(path)
        except UnsafeModel as exc:
            raise InvalidRequest(str(exc)) from None
