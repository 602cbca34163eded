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


USER_ENV, PASSWORD_ENV = "STUDIO_USER", "STUDIO_PASSWORD"


def add_login(p: argparse.ArgumentParser) -> None:
    """The flags of a command that acts: who logs in (there is no default account or role)."""
    p.add_argument("--user", help=f"act as this account ({USER_ENV}); the password comes from {PASSWORD_ENV} "
                                  "or a prompt on a terminal")
    p.add_argument("--system", action="store_true",
                   help="act as the 'system' actor (jobs, imports): it may create, never approve, release, drop, "
                        "override or set baselines")


def login(args, studio):
    """The command's actor: an account login, the ``system`` actor, or solo while the studio has no accounts."""
    import getpass
    import os
    import sys

    from ..access import Forbidden

    user = getattr(args, "user", None) or os.environ.get(USER_ENV) or ""
    if getattr(args, "system", False):
        if getattr(args, "user", None):
            raise StudioError("give --user NAME or --system, not both")
        return studio.access.system()
    if user:
        password = os.environ.get(PASSWORD_ENV)
        if password is None:
            if not sys.stdin.isatty():
                raise Forbidden(f"no password for {user!r}: set {PASSWORD_ENV} or run on a terminal to be asked")
            password = getpass.getpass(f"Password for {user}: ")
        return studio.access.login(user, password)
    if studio.access.accounts_enabled():
        raise Forbidden(f"this studio has accounts: log in with --user NAME (or {USER_ENV}; password from "
                        f"{PASSWORD_ENV} or a prompt), or act as --system")
    return studio.access.solo()
