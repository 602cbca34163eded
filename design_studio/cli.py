"""The ``studio`` command. Sub-commands live in ``design_studio/commands/``, one module per area.

Every bad input ends with one clear line on stderr and a non-zero exit; nothing is half-written.
"""
from __future__ import annotations

import argparse
import sys

from .commands import batch, core, governance, users
from .errors import StudioError

EXIT_BAD_INPUT = 2

#: One ``register(subparsers)`` per area; add a line here for a new area.
COMMAND_MODULES = [batch, core, governance, users]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Design Studio: concepts to 3D, on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    governance.guard_process()  # governance hook: guarded mode (STUDIO_GUARDED, default on)
    try:
        return args.func(args)
    except StudioError as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("studio: interrupted; finished items are saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
