"""The batch run loop: job rows -> items with stable keys -> concepts (and meshes) -> manifest, store, output folder.

One ``BatchRunner`` per process. Under ``accelerate launch`` the first process recovers the previous
run's state (merges shards, resets items left ``running``), every process then takes its share of
the pending items, and the first process merges the shard manifests and writes the contact sheet.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InvalidRequest, ResourceExhausted, StudioError
from ..store.files import atomic_write
from . import manifest
from .faults import Faults
from .jobfile import Job, JobRow, canonical_json

RUN_FILE = "run.json"


class ItemFailed(Exception):
    """One item cannot be made; the reason is recorded and the batch goes on."""


class DiskFull(Exception):
    """No space left: the run stops cleanly; finished items are safe, the rest is done on a rerun."""


def is_disk_full(exc: BaseException | None) -> bool:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno in (28, 122)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def is_db_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc).lower() or "database table is locked" in str(exc).lower()


def retry_locked(fn, attempts: int = 6):
    """Call ``fn``; when another process holds the SQLite write lock past the busy timeout, wait and retry.

    The failed write rolled back, so trying again cannot record anything twice.
    """
    from sqlalchemy.exc import OperationalError

    for attempt in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if not is_db_locked(exc) or attempt == attempts - 1:
                raise ItemFailed(f"database error: {str(exc).splitlines()[0]}") from None
            time.sleep(0.5 * 2**attempt)


# ------------------------------------------------------------------------------ processes
class Dist:
    """One process (the CLI without a launcher, the UI)."""

    rank, world = 0, 1

    def barrier(self) -> None:
        pass

    def split(self, items: list) -> list:
        return list(items)

    def share(self, obj):
        return obj

    def gather(self, obj) -> list:
        return [obj]

    def close(self) -> None:
        pass

    @staticmethod
    def from_env() -> "Dist":
        """Several processes when started by ``accelerate launch``/``torchrun`` (``WORLD_SIZE`` > 1)."""
        if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
            return AccelerateDist()
        return Dist()


class AccelerateDist(Dist):
    """accelerate's process state: gloo on CPU (two CPU processes are a real test here), NCCL on GPUs."""

    def __init__(self):
        import torch
        from accelerate import PartialState

        self.state = PartialState(cpu=not torch.cuda.is_available())
        self.rank, self.world = self.state.process_index, self.state.num_processes
        if self.state.device.type == "cuda":
            # "cuda" then means this process's own GPU for the pipeline and its generators.
            torch.cuda.set_device(self.state.device)

    def barrier(self) -> None:
        self.state.wait_for_everyone()

    def split(self, items: list) -> list:
        with self.state.split_between_processes(list(items)) as part:
            return list(part)

    def share(self, obj):
        from accelerate.utils import broadcast_object_list

        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def gather(self, obj) -> list:
        from accelerate.utils import gather_object

        return list(gather_object([obj]))

    def close(self) -> None:
        self.state.destroy_process_group()


# ------------------------------------------------------------------------------ items and results
@dataclass
class Item:
    key: str
    row: JobRow


@dataclass
class Progress:
    rank: int
    world: int
    total: int  # items this process will try
    finished: int = 0
    failed: int = 0
    images: int = 0
    meshes: int = 0
    current: str = ""


@dataclass
class BatchSummary:
    out_dir: str
    job: str
    run_id: str
    total_rows: int
    invalid: list[str] = field(default_factory=list)  # "line N: reason" of rows skipped by --skip-invalid
    done_before: int = 0  # items a previous run finished (skipped now)
    done_now: int = 0
    failed: list[dict] = field(default_factory=list)  # {"line", "prompt", "reason"}
    not_run: int = 0  # left for a rerun (cancelled or stopped)
    images: int = 0
    meshes: int = 0
    seconds: float = 0.0
    loop_seconds: list[float] = field(default_factory=list)  # per process, generation only
    processes: int = 1
    stopped: str = ""  # why the run stopped early ("cancelled", "disk full: ...")
    contact_sheet: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.stopped and not self.not_run

    def lines(self) -> list[str]:
        out = [
            f"batch {self.job}: {self.total_rows} rows; {self.done_now} done now, {self.done_before} done before, "
            f"{len(self.failed)} failed, {len(self.invalid)} invalid (skipped), {self.not_run} not run",
            f"{self.images} images, {self.meshes} meshes in {self.seconds:.1f} s on {self.processes} process(es)",
        ]
        out += [f"failed line {f['line']}: {f['reason']}" for f in self.failed]
        out += [f"invalid {p}" for p in self.invalid]
        if self.stopped:
            out.append(f"stopped early: {self.stopped}; rerun the same command to finish (done items are kept)")
        if self.contact_sheet:
            out.append(f"contact sheet: {self.contact_sheet}")
        return out


def slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-") or "row"


# ------------------------------------------------------------------------------ the runner
class BatchRunner:
    """Runs one job file into ``out_dir`` through a ``Studio`` (or its ``BatchService``): ``settings``,
    ``store``, ``models``, ``access``, ``concepts``, ``meshes``, ``load_batch`` and ``discard_batch_designs``;
    see ``run``. Every design is recorded as ``actor`` (the signed-in user, the CLI login or ``system``)."""

    def __init__(
        self,
        studio,
        job_path: str | Path,
        out_dir: str | Path,
        *,
        skip_invalid: bool = False,
        project: str | None = None,
        actor=None,
        dist: Dist | None = None,
        faults: Faults | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        self.studio = studio
        self.job_path = Path(job_path)
        self.out_dir = Path(out_dir)
        self.skip_invalid = skip_invalid
        self.project = project
        self.actor = actor
        self.dist = dist or Dist()
        self.faults = faults if faults is not None else Faults.from_env()
        self.on_progress = on_progress
        self.should_stop = should_stop or (lambda: False)

    # .................................................................. keys
    def model_identity(self, row: JobRow) -> dict:
        from .. import catalog

        s = self.studio.settings
        return catalog.model_identity(s.profile, mesh=row.mesh, sketch=bool(row.sketch),
                                      models_dir=s.resolved_models_dir)

    def item_key(self, row: JobRow) -> str:
        """Hash of prompt, seed, model revision and every parameter: a changed row is new work."""
        payload = {"row": row.params(), "models": self.model_identity(row)}
        return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:32]

    def load(self) -> tuple[Job, list[Item]]:
        job = self.studio.load_batch(self.job_path, default_project=self.project)
        if job.problems and not self.skip_invalid:
            shown = "\n".join(str(p) for p in job.problems)
            raise InvalidRequest(f"job file {self.job_path.name} has {len(job.problems)} bad row(s); "
                                 f"nothing was run (fix them or pass --skip-invalid):\n{shown}")
        return job, [Item(self.item_key(row), row) for row in job.rows]

    # .................................................................. run
    def run(self) -> BatchSummary:
        started = time.time()
        self.actor = self.studio.access.check(self.actor, "create")  # refused before any work
        job, items = self.load()
        prep = None
        if self.dist.rank == 0:
            try:
                prep = self._prepare(job, items)
            except Exception as exc:  # other processes must hear about it rather than wait forever
                prep = {"error": f"{type(exc).__name__}: {exc}", "disk_full": is_disk_full(exc)}
        prep = self.dist.share(prep)
        if "error" in prep:
            if prep.get("disk_full"):
                raise ResourceExhausted(f"the disk holding {self.out_dir} is full; nothing was changed "
                                        f"({prep['error']})")
            raise StudioError(f"batch set-up failed: {prep['error']}")
        self.run_id = prep["run_id"]
        done_before = set(prep["done"])
        pending = [it for it in items if it.key not in done_before]
        mine = self.dist.split(pending)
        if mine:
            # Load weights before the clock starts: the loop time then measures generation alone.
            self.studio.models.get("concept")
            if any(it.row.mesh for it in mine):
                self.studio.models.get("depth")

        result = self._loop(mine)
        results = self.dist.gather(result)
        self.dist.barrier()
        if self.dist.rank != 0:
            return self._summary(job, items, done_before, {}, results, started, merged=False)
        merge_failed = ""
        try:
            states = manifest.merge(self.out_dir)
        except (OSError, ResourceExhausted) as exc:
            if not is_disk_full(exc):
                raise
            # The shards are intact and the next start merges them; report from them meanwhile.
            states, merge_failed = manifest.collect(self.out_dir), f"disk full while merging the manifest ({exc})"
        summary = self._summary(job, items, done_before, states, results, started, merged=True)
        if merge_failed:
            summary.stopped = "; ".join(x for x in (summary.stopped, merge_failed) if x)
        try:
            from .report import write_contact_sheet

            summary.contact_sheet = str(write_contact_sheet(self.out_dir, job, items, states, summary))
            atomic_write(self.out_dir / "summary.json",
                         json.dumps(asdict(summary), indent=2, ensure_ascii=False).encode("utf-8"))
        except (OSError, ResourceExhausted) as exc:
            if not is_disk_full(exc):
                raise
            summary.stopped = summary.stopped or "disk full while writing the contact sheet"
        return summary

    def _prepare(self, job: Job, items: list[Item]) -> dict:
        """First process only: run id, recovered states, stale designs discarded, projects and models ready."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        run_file = self.out_dir / RUN_FILE
        if run_file.is_file():
            run_id = json.loads(run_file.read_text())["run_id"]
        else:
            run_id = uuid.uuid4().hex
            atomic_write(run_file, json.dumps({"run_id": run_id, "job": str(self.job_path.resolve()),
                                               "created": time.time()}).encode())
        stale_hang = self.out_dir / ".fault-hang"
        if stale_hang.exists():
            stale_hang.unlink()
        # A process killed inside atomic_write leaves its temp file; the folder is this run's alone.
        for leftover in self.out_dir.rglob(".tmp-*"):
            leftover.unlink(missing_ok=True)
        states = manifest.merge(self.out_dir)
        done = {k for k, rec in states.items() if rec["state"] == "done"}
        # Items left "running" (a killed run) or "failed" are redone: their half-made designs go first.
        redo = {it.key for it in items if it.key not in done}
        self.studio.discard_batch_designs(run_id, redo)
        for project in sorted({it.row.project for it in items}):
            self.studio.store.project(project)  # created once here, never raced by two processes
        if any(it.key not in done for it in items):
            self.studio.models.get("concept")  # builds/loads weights once before the others load them
            if any(it.row.mesh for it in items if it.key not in done):
                self.studio.models.get("depth")
        return {"run_id": run_id, "done": sorted(done)}

    def _loop(self, mine: list[Item]) -> dict:
        progress = Progress(rank=self.dist.rank, world=self.dist.world, total=len(mine))
        result = {"done": 0, "failed": 0, "images": 0, "meshes": 0, "stopped": "", "loop_seconds": 0.0}
        self._report(progress)
        t0 = time.perf_counter()
        with manifest.ShardWriter(manifest.shard_path(self.out_dir, self.dist.rank), rank=self.dist.rank) as shard:
            for item in mine:
                if self.should_stop():
                    result["stopped"] = "cancelled"
                    break
                progress.current = f"line {item.row.line}: {item.row.prompt[:60]}"
                self._report(progress)
                base = {"key": item.key, "line": item.row.line, "prompt": item.row.prompt,
                        "project": item.row.project, "run_id": self.run_id}
                try:
                    shard.append(dict(base, state="running"))
                    record = self._do_item(item)
                    shard.append(dict(base, state="done", **record))
                    result["done"] += 1
                    result["images"] += len(record["images"])
                    result["meshes"] += len(record["meshes"])
                    progress.images += len(record["images"])
                    progress.meshes += len(record["meshes"])
                except Exception as exc:
                    if is_disk_full(exc):
                        # The item stays "running": its designs are discarded now or on the next start.
                        self._discard(item)
                        result["stopped"] = f"disk full ({exc})"
                        break
                    reason = str(exc) if isinstance(exc, ItemFailed) else f"{type(exc).__name__}: {exc}"
                    self._discard(item)
                    try:
                        shard.append(dict(base, state="failed", reason=reason))
                    except OSError as write_exc:
                        if is_disk_full(write_exc):
                            result["stopped"] = f"disk full ({write_exc})"
                            break
                        raise
                    result["failed"] += 1
                    progress.failed += 1
                progress.finished += 1
                self._report(progress)
        result["loop_seconds"] = time.perf_counter() - t0
        progress.current = ""
        self._report(progress)
        return result

    def _report(self, progress: Progress) -> None:
        if self.on_progress is not None:
            self.on_progress(progress)

    def _discard(self, item: Item) -> None:
        try:
            self.studio.discard_batch_designs(self.run_id, {item.key})
        except Exception:  # the next start discards them again; never hide the item's own error
            pass

    # .................................................................. one item
    def _do_item(self, item: Item) -> dict:
        row = item.row
        kwargs: dict = {}
        prompt, negative = row.prompt, row.negative_prompt
        if row.category:
            kwargs["preset"] = row.category
        if row.sketch:
            kwargs["sketch"] = row.sketch
        if row.adapters:
            kwargs["adapters"] = list(row.adapters)
        tag = {"batch_run": self.run_id, "batch_key": item.key, "batch_line": row.line,
               "batch_file": self.job_path.name}
        if row.category:
            tag["category"] = row.category
        designs = self._generate(row, prompt, negative, tag, kwargs)
        self.faults.after_designs(self.out_dir)

        meshes = []
        if row.mesh:
            mesh_kwargs = {"backend": row.mesh}
            for design in designs:
                try:
                    meshes.append(retry_locked(
                        lambda d=design: self.studio.meshes.make_mesh(d.id, actor=self.actor, **mesh_kwargs)))
                except StudioError as exc:
                    if is_disk_full(exc):
                        raise DiskFull(str(exc)) from exc
                    raise ItemFailed(f"mesh of design {design.id} failed: {exc}") from None

        # Readable copies: the same name on a rerun, so nothing piles up as -1, -2 copies.
        stem = f"{row.line:05d}-{slug(row.prompt)}"
        images = [self._copy_out(d, self.out_dir / "images" / f"{stem}-seed{d.seed}.png") for d in designs]
        mesh_files = [self._copy_out(m, self.out_dir / "meshes" / f"{stem}-seed{m.seed}.glb") for m in meshes]
        return {"images": images, "meshes": mesh_files, "seeds": row.seeds}

    def _copy_out(self, design, target: Path) -> dict:
        data = self.studio.store.file_path(design).read_bytes()
        self.faults.before_write()
        atomic_write(target, data)
        return {"design": design.id, "file": target.relative_to(self.out_dir).as_posix(), "seed": design.seed,
                "sha256": design.sha256}

    def _generate(self, row: JobRow, prompt: str, negative: str, tag: dict, kwargs: dict) -> list:
        """All N images in one forward pass; on OOM once more in halves (same seeds); retried if the DB is busy."""
        try:
            return self._generate_chunk(row, prompt, negative, tag, kwargs, row.seed, row.n)
        except ResourceExhausted as exc:
            if is_disk_full(exc):
                raise DiskFull(str(exc)) from exc
            if row.n == 1:
                raise ItemFailed(f"out of memory at 1 image: {exc}") from None
            first_error = str(exc)
        self.studio.discard_batch_designs(self.run_id, {tag["batch_key"]})
        size = math.ceil(row.n / 2)
        designs = []
        seeds = row.seeds
        for start in range(0, row.n, size):
            chunk = seeds[start:start + size]
            try:
                designs += self._generate_chunk(row, prompt, negative, tag, kwargs, chunk[0], len(chunk))
            except ResourceExhausted as exc:
                if is_disk_full(exc):
                    raise DiskFull(str(exc)) from exc
                raise ItemFailed(f"out of memory at {row.n} images ({first_error}) and again at {len(chunk)} "
                                 f"images per pass: {exc}") from None
        return designs

    def _generate_chunk(self, row, prompt, negative, tag, kwargs, seed: int, n: int) -> list:
        def on_progress(fraction: float, message: str) -> None:
            self.faults.check_oom(row.line, n)

        try:
            return retry_locked(lambda: self.studio.concepts.generate_concepts(
                prompt, negative_prompt=negative, n=n, seed=seed, steps=row.steps, guidance=row.guidance,
                width=row.width, height=row.height, project=row.project, actor=self.actor,
                on_progress=on_progress if self.faults else None, extra_params=tag, **kwargs,
            ))
        except ResourceExhausted:
            raise
        except StudioError as exc:
            raise ItemFailed(str(exc)) from None

    # .................................................................. summary
    def _summary(self, job, items, done_before, states, results, started, *, merged: bool) -> BatchSummary:
        summary = BatchSummary(
            out_dir=str(self.out_dir), job=self.job_path.name, run_id=self.run_id, total_rows=job.total_rows,
            invalid=[str(p) for p in job.problems], done_before=sum(it.key in done_before for it in items),
            processes=self.dist.world,
        )
        summary.done_now = sum(r["done"] for r in results)
        summary.images = sum(r["images"] for r in results)
        summary.meshes = sum(r["meshes"] for r in results)
        summary.loop_seconds = [round(r["loop_seconds"], 3) for r in results]
        summary.stopped = "; ".join(sorted({r["stopped"] for r in results if r["stopped"]}))
        if merged:
            for it in items:
                rec = states.get(it.key)
                if rec is not None and rec["state"] == "failed" and it.key not in done_before:
                    summary.failed.append({"line": it.row.line, "prompt": it.row.prompt, "reason": rec.get("reason", "")})
            summary.not_run = sum(1 for it in items if states.get(it.key, {}).get("state") not in ("done", "failed"))
        summary.seconds = round(time.time() - started, 2)
        return summary
