"""The design writer: the one component that creates a design, all or nothing, and writes ledger events.

Creating a design (concept, mesh, colourway, import) is always the same steps:

1. a uid, known before the row so the watermark and the signed record can carry it;
2. the file stamped (watermark, signed record, C2PA when configured) and stored atomically, then
   its signed manifest beside it; a journal in ``data_dir/pending`` lists these files first;
3. the design rows and their ``design_created`` events in ONE database transaction (the ledger's
   locked append), so both are visible or neither is;
4. the journal removed.

A process killed before step 3 commits leaves files that no row points to; ``sweep`` (run when a
studio starts) deletes them using the journals of dead processes. ``audit`` names any design that
lacks its ``design_created`` event, its file or its signed manifest (``studio ledger verify``).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..access import AccessPolicy, Actor, Forbidden
from ..errors import InvalidRequest
from ..settings import Settings
from ..store import Design, Project, Store, atomic_write

LEDGER_HEAD = "ledger.head.json"
PENDING_DIR = "pending"


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


@dataclass
class NewDesign:
    """One design to create. ``content`` is a PIL image (stored as a stamped PNG) or GLB bytes."""

    kind: str  # image | mesh
    record_kind: str  # concept | upload | mesh (in the signed record)
    content: object
    project_id: int
    params: dict
    parent: Design | None = None
    prompt: str = ""
    negative_prompt: str = ""
    seed: int | None = None
    model: str = ""
    revision: str = ""
    adapters: list[str] = field(default_factory=list)
    png_meta: dict | None = None  # plain ``studio:*`` chunks beside the signed ones


@dataclass
class AuditProblem:
    design_id: int
    problem: str

    def __str__(self) -> str:
        return f"design {self.design_id}: {self.problem}"


class DesignWriter:
    """Given settings, the store and the access policy; owns the signing keys and the ledger."""

    def __init__(self, settings: Settings, store: Store, access: AccessPolicy):
        from brand_guard.ledger import create_tables

        self.settings = settings
        self.store = store
        self.access = access
        self.pending = settings.data_dir / PENDING_DIR
        create_tables(store.engine)  # migration 6 made them; a no-op then
        # The key is read (or made, in settings.key_dir) on first signature, not when a command that
        # signs nothing (``studio users``) opens the studio.
        self._lock = threading.Lock()
        self._keys = None
        self._ledger = None

    @property
    def keys(self):
        """The studio's Ed25519 signing key."""
        with self._lock:
            if self._keys is None:
                from brand_guard.provenance import StudioKeys

                self._keys = StudioKeys.load_or_create(self.settings.key_dir)
            return self._keys

    @property
    def ledger(self):
        """The hash-chained decision ledger in the studio database; its signed head sits in the data dir."""
        keys = self.keys
        with self._lock:
            if self._ledger is None:
                from brand_guard.ledger import Ledger

                self._ledger = Ledger(self.store.engine, keys, self.settings.data_dir / LEDGER_HEAD)
            return self._ledger

    # ------------------------------------------------------------------ creating designs
    def new_uid(self) -> str:
        return uuid.uuid4().hex

    def create(self, items: list[NewDesign], actor: Actor | None) -> list[Design]:
        """Stamp, store and sign each item's file, then commit rows and ``design_created`` events together."""
        actor = self.access.check(actor, "create")
        season = {"season": self.settings.season} if self.settings.season else {}
        prepared = []
        for item in items:
            uid = self.new_uid()
            params = dict(item.params, uid=uid, **season)
            fields = dict(design_uid=uid, actor=actor.name, prompt=item.prompt, seed=item.seed, model=item.model,
                          revision=item.revision, params=params, kind=item.record_kind,
                          parents=[item.parent.uid or str(item.parent.id)] if item.parent is not None else [])
            if item.kind == "image":
                fields.update(negative_prompt=item.negative_prompt, adapters=list(item.adapters))
                meta = dict(item.png_meta or {}, created_by=actor.name) if item.png_meta is not None else None
                data, suffix = self.stamp_png(item.content, fields, extra_meta=meta), ".png"
            else:
                data, suffix = self.stamp_glb(item.content, fields), ".glb"
            prepared.append((item, uid, params, data, suffix))

        journal = self._journal([(uid, data, suffix) for _, uid, _, data, suffix in prepared])
        rows = []
        for item, uid, params, data, suffix in prepared:
            rel, digest = self.store.files.put(data, suffix)
            self._sign(self.store.files.path(rel))
            rows.append(dict(project_id=item.project_id, kind=item.kind,
                             parent_id=item.parent.id if item.parent is not None else None, prompt=item.prompt,
                             negative_prompt=item.negative_prompt, seed=item.seed, model=item.model,
                             revision=item.revision, params=params, file=rel, sha256=digest,
                             created_by=actor.name, uid=uid))

        def work(conn):
            with Session(bind=conn, expire_on_commit=False) as s:
                designs = [Design(**row) for row in rows]
                s.add_all(designs)
                s.flush()
                events = []
                for design in designs:
                    ctx = self._style_in(s, design)
                    events.append(("design_created", actor.name, actor.role, "design", str(design.id),
                                   ctx.payload(uid=design.uid, kind=design.kind, parent_id=design.parent_id,
                                               sha256=design.sha256)))
                s.expunge_all()
            return designs, events

        designs, _ = self.commit_with_events(work)
        journal.unlink(missing_ok=True)
        return [self.store.design(d.id) for d in designs]

    def commit_with_events(self, work):
        """``work(conn)`` returns (result, events); its rows and the events commit in one transaction."""
        from brand_guard.errors import LedgerError, PermissionDenied

        try:
            return self.ledger.append_with(work)
        except PermissionDenied as exc:
            raise Forbidden(str(exc)) from None
        except LedgerError as exc:
            raise InvalidRequest(str(exc)) from None

    def _journal(self, files: list[tuple[str, bytes, str]]) -> Path:
        """Name the files about to be written, so a crash before the commit can be swept."""
        import hashlib

        self.pending.mkdir(parents=True, exist_ok=True)
        entries = []
        for uid, data, suffix in files:
            digest = hashlib.sha256(data).hexdigest()
            entries.append({"uid": uid, "file": f"{digest[:2]}/{digest}{suffix}"})  # FileStore.put's path
        path = self.pending / f"{os.getpid()}-{uuid.uuid4().hex}.json"
        atomic_write(path, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "files": entries}).encode())
        return path

    def sweep(self) -> int:
        """Delete the files and manifests of designs whose writer died before committing; returns how many."""
        from brand_guard.provenance import manifest_path

        removed = 0
        for journal in sorted(self.pending.glob("*.json")) if self.pending.is_dir() else []:
            try:
                data = json.loads(journal.read_text("utf-8"))
            except (OSError, ValueError):
                journal.unlink(missing_ok=True)
                continue
            if data.get("host") == socket.gethostname() and _alive(int(data.get("pid") or 0)):
                continue  # a writer still at work (this process or another)
            uids = [e["uid"] for e in data.get("files", [])]
            with self.store.sessions() as s:
                committed = set(s.scalars(select(Design.uid).where(Design.uid.in_(uids)))) if uids else set()
            for entry in data.get("files", []):
                if entry["uid"] in committed:
                    continue
                target = self.store.files.root / entry["file"]
                for path in (target, manifest_path(target)):
                    if path.is_file():
                        path.unlink()
                        removed += 1
            journal.unlink(missing_ok=True)
        return removed

    # ------------------------------------------------------------------ ledger events about designs
    def style_context(self, design: Design | int) -> StyleContext:
        """Style = the root design of the lineage; collection = its project; season from the root's params."""
        with self.store.sessions() as s:
            found = s.get(Design, design.id if isinstance(design, Design) else int(design))
            if found is None:
                from ..errors import NotFound

                raise NotFound(f"design {design} does not exist")
            return self._style_in(s, found)

    @staticmethod
    def _style_in(s, design: Design) -> StyleContext:
        root, seen = design, {design.id}
        while root.parent_id is not None and root.parent_id not in seen:
            seen.add(root.parent_id)
            root = s.get(Design, root.parent_id)
        project = s.get(Project, root.project_id)
        return StyleContext(str(root.id), project.name if project else "", str((root.params or {}).get("season") or ""))

    def record(self, event: str, design_id: int, actor: Actor | None, action: str, **payload):
        """Append a ledger event about a design, by an actor the access table allows to ``action``."""
        actor = self.access.check(actor, action)
        design = self.store.design(design_id)
        ctx = self.style_context(design)
        return self.append(event, actor, "design", str(design.id), ctx.payload(uid=design.uid, **payload))

    def append(self, event: str, actor: Actor, subject_type: str, subject_id: str, payload: dict, work=None):
        """One ledger event by an actor the caller has checked; ``work(conn)`` (rows) commits in the same
        transaction."""
        actor = self.access.current(actor)  # still the account it was, with its role as it stands now

        def locked(conn):
            result = work(conn) if work is not None else None
            return result, [(event, actor.name, actor.role, subject_type, subject_id, payload)]

        result, entries = self.commit_with_events(locked)
        return (result, entries[0]) if work is not None else entries[0]

    def require_recorded(self, design: Design) -> None:
        """Refuse to act on a design the ledger does not know (its creation was never recorded)."""
        if not self.ledger.events(subject_type="design", subject_id=str(design.id), event="design_created"):
            raise InvalidRequest(f"design {design.id} has no design_created event in the ledger; "
                                 "run `studio ledger verify` and look into it before acting on it")

    def audit(self) -> list[AuditProblem]:
        """Every design without its ``design_created`` event, its file or its signed manifest."""
        from brand_guard.provenance import manifest_path

        recorded = {e.subject_id for e in self.ledger.events(subject_type="design", event="design_created")}
        problems = []
        with self.store.sessions() as s:
            for design in s.scalars(select(Design).order_by(Design.id)):
                if str(design.id) not in recorded:
                    problems.append(AuditProblem(design.id, "no design_created event in the ledger"))
                target = self.store.files.root / design.file
                if not target.is_file():
                    problems.append(AuditProblem(design.id, f"file {design.file} is missing"))
                elif not manifest_path(target).is_file():
                    problems.append(AuditProblem(design.id, f"file {design.file} has no signed manifest"))
        return problems

    # ------------------------------------------------------------------ provenance
    def _record(self, fields: dict):
        from brand_guard.provenance import ProvenanceRecord

        data = dict(fields)
        data["design_id"] = data.pop("design_uid", None) or data.get("design_id")
        data["seed"] = None if data.get("seed") is None else int(data["seed"])
        data["params"] = json.loads(json.dumps(data.get("params") or {}, default=str))
        return ProvenanceRecord.from_dict(data)

    def stamp_png(self, image, record_fields: dict, extra_meta: dict | None = None) -> bytes:
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
        signer = self.c2pa_signer()
        # Last: C2PA hashes the bytes around its own chunk, so nothing may rewrite the PNG afterwards.
        return signer.sign_png(data, record) if signer is not None else data

    def stamp_glb(self, glb_bytes: bytes, record_fields: dict) -> bytes:
        from brand_guard.provenance import stamp_glb

        return stamp_glb(glb_bytes, self._record(dict(record_fields, kind=record_fields.get("kind", "mesh"))))

    def c2pa_signer(self):
        """The C2PA signer when ``c2pa_cert`` and ``c2pa_key`` are configured, else None."""
        if self.settings.c2pa_cert is None or self.settings.c2pa_key is None:
            return None
        from brand_guard.c2pa_sign import C2paSigner

        return C2paSigner.from_files(self.settings.c2pa_cert, self.settings.c2pa_key, alg=self.settings.c2pa_alg)

    def _sign(self, path: Path) -> None:
        """The signed manifest beside a stored file, from the record embedded in it."""
        from brand_guard.provenance import write_manifest

        record = embedded_record(path)
        if record is not None:
            write_manifest(path, record, self.keys)

    def sign_bytes(self, data: bytes) -> str:
        """The studio's Ed25519 signature (base64) of ``data``: ZIP exports sign their provenance.json."""
        return self.keys.sign(data)


def embedded_record(path: Path):
    from brand_guard.provenance import PNG_RECORD_KEY, ProvenanceRecord, read_glb_provenance, read_png_provenance

    data = Path(path).read_bytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        raw = read_png_provenance(data)[0].get(PNG_RECORD_KEY)
        record = json.loads(raw) if raw else None
    else:
        record = read_glb_provenance(data)
    return ProvenanceRecord.from_dict(record) if record else None


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
