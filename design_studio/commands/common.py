"""What every sub-command shares: settings from flags and environment, the Studio, common flags."""
from __future__ import annotations

import argparse

from ..errors import StudioError


def settings_from(args):
    """Settings from ``STUDIO_*`` variables, overridden by the flags the command was given."""
    from pydantic import ValidationError

    from ..settings import Settings

    overrides = {}
    for field in ("data_dir", "profile", "device", "host", "port"):
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StudioError(f"setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def studio_from(args):
    from ..services import Studio

    return Studio(settings_from(args))


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["tiny", "standard", "quality"], help="model profile (default: STUDIO_PROFILE or tiny)")
    p.add_argument("--data-dir", dest="data_dir", help="where the database and files live (STUDIO_DATA_DIR)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="compute device (default auto)")


def unique_target(out_dir, name: str):
    """``out_dir/name``, or ``name-1``, ``name-2``… when taken, so nothing is overwritten."""
    target = out_dir / name
    stem, suffix, i = target.stem, target.suffix, 1
    while target.exists():
        target = out_dir / f"{stem}-{i}{suffix}"
        i += 1
    return target


def actor() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in a bare container
        return ""
