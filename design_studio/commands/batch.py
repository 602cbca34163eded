"""``studio batch validate FILE`` and ``studio batch run FILE --profile P --out DIR`` (also under accelerate)."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import add_common, add_login, login, settings_from

EXIT_INVALID = 2
EXIT_INCOMPLETE = 1
EXIT_DISK_FULL = 3


def cmd_validate(args) -> int:
    from ..services import Studio

    studio = Studio(settings_from(args))
    job = studio.load_batch(args.file, default_project=args.project)
    for problem in job.problems:
        print(str(problem), file=sys.stderr)
    images = sum(r.n for r in job.rows)
    meshes = sum(r.n for r in job.rows if r.mesh)
    print(f"{Path(args.file).name}: {job.total_rows} rows, {len(job.rows)} valid, {len(job.problems)} bad; "
          f"{images} images and {meshes} meshes to make")
    return EXIT_INVALID if job.problems else 0


class _Bars:
    """tqdm bar per process: rows done of this process's share, images made, ETA."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            desc = f"rank {p.rank}" if p.world > 1 else "rows"
            self.bar = tqdm(total=p.total, desc=desc, unit="row", position=p.rank, dynamic_ncols=True,
                            file=sys.stderr, leave=True)
        self.bar.n = p.finished
        self.bar.set_postfix_str(f"images {p.images}" + (f", meshes {p.meshes}" if p.meshes else "")
                                 + (f", failed {p.failed}" if p.failed else ""), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_run(args) -> int:
    from ..batch.runner import BatchRunner, Dist
    from ..services import Studio

    settings = settings_from(args)
    dist = Dist.from_env()
    # The first process migrates the database and builds the tiny weights before the others open them.
    studio = Studio(settings) if dist.rank == 0 else None
    dist.barrier()
    if studio is None:
        studio = Studio(settings)
    who = login(args, studio)
    bars = _Bars(enabled=not args.quiet)
    runner = BatchRunner(studio, args.file, Path(args.out), skip_invalid=args.skip_invalid, project=args.project,
                         actor=who, dist=dist, on_progress=bars)
    try:
        summary = runner.run()
    finally:
        bars.close()
        dist.close()
    if dist.rank != 0:
        return 0
    for line in summary.lines():
        print(line)
    if summary.stopped.startswith("disk full"):
        print(f"studio: error: {summary.stopped}; finished items are saved", file=sys.stderr)
        return EXIT_DISK_FULL
    return 0 if not summary.failed and not summary.not_run else EXIT_INCOMPLETE


def register(sub) -> None:
    p = sub.add_parser("batch", help="run a CSV/JSONL job file of prompts (resumable; accelerate for many GPUs)")
    actions = p.add_subparsers(dest="batch_action", required=True)

    v = actions.add_parser("validate", help="check every row; lists each bad row as 'line N: reason'")
    add_common(v)
    v.add_argument("file", help="job file (.csv or .jsonl)")
    v.add_argument("--project", help="project of rows that name none (default Inbox)")
    v.set_defaults(func=cmd_validate)

    r = actions.add_parser("run", help="make every row's images (and meshes) into DIR; rerun to resume")
    add_common(r)
    r.add_argument("file", help="job file (.csv or .jsonl)")
    r.add_argument("--out", required=True, help="output folder: images/, meshes/, manifest.jsonl, contact-sheet.html")
    r.add_argument("--project", help="project of rows that name none (default Inbox)")
    r.add_argument("--skip-invalid", dest="skip_invalid", action="store_true",
                   help="run the valid rows even if some are bad (they are listed in the summary)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_login(r)
    r.set_defaults(func=cmd_run)


