"""``python -m pipelines.twins build DIR --profile standard|quality|all``: write a twin mirror."""
from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from . import PROFILES

    parser = argparse.ArgumentParser(prog="python -m pipelines.twins",
                                     description="Write random-weight twins of the catalogued models in their published layouts.")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write the twins of a profile under DIR/<repo id>/")
    b.add_argument("dir", help="mirror folder to write (created if missing)")
    b.add_argument("--profile", choices=PROFILES, default="all")
    b.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from pathlib import Path

    from . import build

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        print(f"error: {root} exists and is not a folder", file=sys.stderr)
        return 2
    total = 0

    def show(report) -> None:
        nonlocal total
        total += report.bytes
        print(f"{report.repo_id}\t{report.bytes / 1e6:.2f} MB\t{report.seconds:.1f} s\t{report.path}", flush=True)

    build(root, args.profile, seed=args.seed, on_built=show)
    print(f"total\t{total / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
