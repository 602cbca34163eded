"""A batch run on a thread of the studio's own process, for the UI: progress to poll, a cancel switch."""
from __future__ import annotations

import hashlib
import shutil
import threading
import time
from pathlib import Path

from ..errors import StudioError
from . import manifest


def run_folder(root: Path, job_file: Path) -> Path:
    """The same job file (same bytes) always maps to the same folder, so uploading it again resumes."""
    digest = hashlib.sha256(Path(job_file).read_bytes()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(job_file).stem)[:40] or "job"
    return Path(root) / f"{stem}-{digest}"


class BackgroundBatch:
    """Runs ``studio.run_batch`` on a daemon thread; ``cancel()`` stops it between items."""

    def __init__(self, studio, job_file: Path, out_dir: Path, *, skip_invalid: bool = False, actor=None):
        self.studio = studio
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # Keep the job file beside its results: the upload's temp copy may vanish.
        self.job_file = self.out_dir / f"job-{Path(job_file).name}"  # never the manifest's own name
        if Path(job_file).resolve() != self.job_file.resolve():
            shutil.copyfile(job_file, self.job_file)
        self.skip_invalid = skip_invalid
        self.actor = actor  # the access policy's Actor the designs are recorded as (None: solo mode)
        self.progress = None
        self.summary = None
        self.error = ""
        self.started = time.time()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"batch-{self.out_dir.name}", daemon=True)

    def start(self) -> "BackgroundBatch":
        self._thread.start()
        return self

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.summary = self.studio.run_batch(
                self.job_file, self.out_dir, skip_invalid=self.skip_invalid, actor=self.actor,
                on_progress=self._on_progress, should_stop=self._cancel.is_set,
            )
        except StudioError as exc:
            self.error = str(exc)
        except Exception as exc:  # shown in the tab rather than lost on a thread
            self.error = f"{type(exc).__name__}: {exc}"

    def _on_progress(self, progress) -> None:
        self.progress = progress

    def status_text(self) -> str:
        if self.error:
            return f"**Stopped:** {self.error}"
        if self.summary is not None:
            return "**Finished.**\n\n" + "\n".join(f"- {line}" for line in self.summary.lines())
        p = self.progress
        if p is None:
            return "Starting… (loading models)"
        elapsed = time.time() - self.started
        eta = ""
        if p.finished and p.total > p.finished:
            eta = f" · about {elapsed / p.finished * (p.total - p.finished):.0f} s left"
        state = "cancelling…" if self._cancel.is_set() else "running"
        current = f"\n\nNow: {p.current}" if p.current else ""
        return (f"**{state}:** rows {p.finished} of {p.total} · images {p.images} · meshes {p.meshes} · "
                f"failed {p.failed} · {elapsed:.0f} s{eta}{current}")

    def result_images(self, limit: int = 200) -> list[tuple[str, str]]:
        """(path, caption) of finished images, from the shard being written or the merged manifest."""
        records = manifest.read_records(self.out_dir / manifest.MANIFEST)
        for shard in sorted(self.out_dir.glob(manifest.SHARD_GLOB)):
            records += manifest.read_records(shard)
        states = manifest.latest_states(records)
        out = []
        for rec in sorted(states.values(), key=lambda r: r.get("line", 0)):
            for img in rec.get("images", []) if rec["state"] == "done" else []:
                path = self.out_dir / img["file"]
                if path.is_file():
                    out.append((str(path), f"line {rec['line']} · #{img['design']} · seed {img['seed']}"))
        return out[:limit]
