"""GPU jobs: who runs what, their status (set once when they end) and cooperative cancellation.

A job is cancelled by a flag that the progress callback checks at every denoising step (and every
mesh stage), so a running generation stops within one step; the callback raises ``Cancelled``.
"""
from __future__ import annotations

import contextvars
import itertools
import threading
import time
from dataclasses import dataclass, field

from ..errors import StudioError
from .base import ProgressFn


class Cancelled(StudioError):
    """The user pressed Stop; nothing from the unfinished job was saved."""


_current: contextvars.ContextVar["Job | None"] = contextvars.ContextVar("studio_job", default=None)


@dataclass
class Job:
    id: int
    kind: str
    actor: str
    owner: str  # the browser session (or API client session) that started it
    status: str = "running"  # running | done | failed | cancelled
    message: str = ""
    progress: str = ""
    started: float = field(default_factory=time.time)
    ended: float | None = None
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def checkpoint(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.kind} stopped at the user's request; nothing was saved")


class JobBoard:
    """The jobs of one studio process; thread-safe."""

    def __init__(self, keep: int = 200):
        self._jobs: dict[int, Job] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._keep = keep

    def start(self, kind: str, *, actor: str = "", owner: str = "") -> Job:
        with self._lock:
            job = Job(id=next(self._ids), kind=kind, actor=actor, owner=owner)
            self._jobs[job.id] = job
            for old in sorted(self._jobs)[: max(0, len(self._jobs) - self._keep)]:
                if self._jobs[old].status != "running":
                    del self._jobs[old]
            return job

    def finish(self, job: Job, status: str, message: str = "") -> bool:
        """Set the final status once; a later call (e.g. 'done' after 'cancelled') changes nothing."""
        with self._lock:
            if job.status != "running":
                return False
            job.status, job.message, job.ended = status, message, time.time()
            return True

    def cancel(self, *, owner: str | None = None, job_id: int | None = None) -> list[Job]:
        """Flag the running jobs of ``owner`` (or the job ``job_id``); they stop at their next step."""
        with self._lock:
            hits = [j for j in self._jobs.values() if j.status == "running"
                    and (owner is None or j.owner == owner) and (job_id is None or j.id == job_id)]
        for job in hits:
            job._cancel.set()
        return hits

    def jobs(self, *, status: str | None = None) -> list[Job]:
        with self._lock:
            return [j for j in sorted(self._jobs.values(), key=lambda j: j.id) if status is None or j.status == status]

    def get(self, job_id: int) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def run(self, job: Job, fn, *args, **kwargs):
        """Call ``fn`` with ``job`` as the current job; record how it ended (once)."""
        token = _current.set(job)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            # The UI turns Cancelled into its own error type; the original stays as __context__.
            cause = exc if isinstance(exc, Cancelled) else exc.__context__
            if isinstance(cause, Cancelled):
                self.finish(job, "cancelled", str(cause))
            else:
                self.finish(job, "failed", str(exc) or type(exc).__name__)
            raise
        else:
            # A Stop that came after the last step is too late to stop anything: the job is done.
            self.finish(job, "done")
            return result
        finally:
            _current.reset(token)


def current_job() -> Job | None:
    return _current.get()


def checkpoint() -> None:
    """Raise ``Cancelled`` when the current job (if any) was asked to stop."""
    job = _current.get()
    if job is not None:
        job.checkpoint()


def step(fraction: float, message: str) -> None:
    """Called on every progress report: note it on the current job, stop if it was cancelled."""
    job = _current.get()
    if job is not None:
        job.progress = message
        job.checkpoint()


def cancellable(on_progress: ProgressFn | None, job: Job | None = None) -> ProgressFn:
    """A progress callback that first checks for cancellation; pass it as ``on_progress``."""

    def report(fraction: float, message: str) -> None:
        if job is not None:
            job.progress = message
            job.checkpoint()
        else:
            step(fraction, message)
        if on_progress is not None:
            on_progress(fraction, message)

    return report
