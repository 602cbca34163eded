"""``studio users add | list | remove``: local accounts (run by the machine's owner, no sign-in needed)."""
from __future__ import annotations

import getpass
import os
import sys

from ..errors import StudioError
from .common import add_common, studio_from


def read_password(args) -> str:
    """--password, else STUDIO_NEW_PASSWORD, else a prompt (asked twice) on a terminal."""
    if args.password is not None:
        return args.password
    if os.environ.get("STUDIO_NEW_PASSWORD"):
        return os.environ["STUDIO_NEW_PASSWORD"]
    if not sys.stdin.isatty():
        raise StudioError("no password given; pass --password P, set STUDIO_NEW_PASSWORD, or run on a terminal")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise StudioError("the two passwords differ; nothing was saved")
    return first


def cmd_users(args) -> int:
    studio = studio_from(args)
    if args.action == "add":
        user = studio.add_user(args.name, args.role, read_password(args))
        print(f"added {user.name}\t{user.role}")
    elif args.action == "list":
        users = studio.users()
        if not users:
            print("no accounts: the studio is open to anyone on this machine (add one with `studio users add`)")
        for u in users:
            print(f"{u.name}\t{u.role}\t{u.created_at:%Y-%m-%d}")
    else:
        studio.remove_user(args.name)
        print(f"removed {args.name}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("users", help="local accounts: designers, creative directors, admins")
    actions = p.add_subparsers(dest="action", required=True)
    a = actions.add_parser("add", help="add an account")
    add_common(a)
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=["designer", "creative_director", "admin"])
    a.add_argument("--password", help="at least 8 characters; asked for when left out")
    a.set_defaults(func=cmd_users)
    a = actions.add_parser("list", help="list accounts")
    add_common(a)
    a.set_defaults(func=cmd_users)
    a = actions.add_parser("remove", help="remove an account")
    add_common(a)
    a.add_argument("name")
    a.set_defaults(func=cmd_users)
