"""The access policy: who acts (an ``Actor``) and what each role may do (one table, ``ACTIONS``).

An actor is established once per request and only here:

* page and API: from the signed-in Gradio session (``gr.Request.username``, set by Gradio's login),
  through ``AccessPolicy.session``;
* command line: from an account login (``AccessPolicy.login``: name and password) or as the
  ``system`` actor (``AccessPolicy.system``), which runs jobs but takes no creative decision;
* solo mode (no accounts exist yet): the person at the machine acts as ``solo``, a designer.

Services never take a name or a role from their caller; they take the ``Actor`` and ask
``AccessPolicy.check`` before acting. ``check`` re-reads the account on every call, so a removed
account loses access at once (its open sessions are refused) and a changed role applies at once.
An ``Actor`` carries a seal made by this process's policy, so one cannot be built by hand.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from .errors import InvalidRequest, StudioError
from .store.models import ROLES

#: Who acts when nobody is signed in (solo mode, no accounts yet): in the ledger and in provenance.
SOLO_ACTOR = "solo"
#: The command line's non-personal actor (cron jobs, imports): it may create, never decide.
SYSTEM_ACTOR = "system"

ACCOUNT_ROLES = ROLES  # designer, creative_director, admin
_EVERYONE = frozenset({"designer", "creative_director", "admin", "system"})
_DECIDERS = frozenset({"creative_director", "admin"})

#: What each role may do. The one table every service consults (through ``AccessPolicy.check``).
ACTIONS: dict[str, frozenset[str]] = {
    "view": _EVERYONE,
    "trace": _EVERYONE,                       # which design a leaked copy comes from (read-only)
    "create": _EVERYONE,                      # generate, import, 3D, colourways, batch runs, projects
    "shortlist": frozenset({"designer", "creative_director", "admin"}),
    "decide": frozenset({"creative_director"}),  # approve, reject, request changes
    "override_flag": _DECIDERS,               # shortlist a near-copy with a reason
    "order_sample": _EVERYONE,
    "close_sample": _EVERYONE,                # receive or reject an ordered sample
    "release": _DECIDERS,
    "drop": _DECIDERS,
    "set_baseline": _DECIDERS,
    "use_vault": _EVERYONE,                   # add, list, remove, rotate (the passphrase is needed too)
    "train_adapter": _EVERYONE,
    "manage_users": frozenset({"admin"}),
}

# scrypt cost: n=2**14, r=8 takes ~50 ms and 16 MiB per check, which makes guessing slow but
# keeps sign-in instant. The parameters travel with each hash, so they can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
MIN_PASSWORD_CHARS = 8
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DUMMY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
_SEAL_KEY = secrets.token_bytes(32)


class Forbidden(StudioError, PermissionError):
    """The actor's role does not allow the act (or nobody is signed in where accounts exist)."""


class SessionEnded(Forbidden):
    """The account behind a session or login was removed; every later call of that session is refused."""


@dataclass(frozen=True)
class Actor:
    """Who acts: an account (name + role), the ``system`` actor, or ``solo`` (no accounts exist)."""

    name: str
    role: str
    kind: str  # account | system | solo
    _seal: str = field(default="", repr=False, compare=False)

    @property
    def label(self) -> str:
        return f"{self.name!r} ({self.role.replace('_', ' ')})"


def _sign(name: str, kind: str) -> str:
    return hmac.new(_SEAL_KEY, f"{kind}\0{name}".encode(), hashlib.sha256).hexdigest()


def _actor(name: str, role: str, kind: str) -> Actor:
    return Actor(name, role, kind, _sign(name, kind))


def allowed(role: str | None, action: str) -> bool:
    if action not in ACTIONS:
        raise InvalidRequest(f"action {action!r} is unknown; known: {', '.join(ACTIONS)}")
    return (role or "") in ACTIONS[action]


def holders(action: str) -> str:
    """'a creative director or an admin': who may do ``action``, for error messages."""
    names = [r.replace("_", " ") for r in ACCOUNT_ROLES + ("system",) if r in ACTIONS[action]]
    return " or ".join(("an " if n[0] in "aeiou" else "a ") + n for n in names)


class AccessPolicy:
    """Establishes actors and checks every act against ``ACTIONS``, reading accounts from ``store``."""

    def __init__(self, store):
        self.store = store

    # ------------------------------------------------------------------ establishing who acts
    def accounts_enabled(self) -> bool:
        """Once any account exists, everyone signs in (page, API) or logs in (CLI)."""
        return self.store.user_count() > 0

    def solo(self) -> Actor:
        """The person at the machine while no account exists; refused once accounts exist."""
        if self.accounts_enabled():
            raise Forbidden("this studio has accounts: sign in (page, API) or log in with --user NAME (CLI)")
        return _actor(SOLO_ACTOR, "designer", "solo")

    def system(self) -> Actor:
        """The command line's ``system`` actor: creates and runs jobs; never approves, releases, drops,
        overrides or sets baselines (``ACTIONS``)."""
        return _actor(SYSTEM_ACTOR, "system", "system")

    def session(self, username: str | None) -> Actor:
        """The actor of a page or API request: the name Gradio's sign-in put on the session
        (``gr.Request.username``); solo when the studio has no accounts."""
        if not username:
            return self.solo()
        user = self.store.user(username)
        if user is None:
            raise SessionEnded(f"account {username!r} no longer exists; this session has ended, sign in again")
        return _actor(user.name, user.role, "account")

    def login(self, name: str, password: str) -> Actor:
        """The actor of a command-line login; a wrong name or password is refused (one message for both)."""
        if not self.authenticate(name, password):
            raise Forbidden(f"login as {(name or '').strip()!r} refused: unknown account or wrong password")
        return self.session((name or "").strip())

    def authenticate(self, name: str, password: str) -> bool:
        """True when ``password`` is the account's; Gradio's ``auth`` callable."""
        user = self.store.user((name or "").strip())
        if user is None:
            # Spend the same time as a real check so the answer does not tell which names exist.
            verify_password(password or "", _DUMMY_HASH)
            return False
        return verify_password(password or "", user.password_hash)

    # ------------------------------------------------------------------ checking an act
    def current(self, actor: Actor | None) -> Actor:
        """``actor`` as it stands now (the account re-read); ``None`` means nobody signed in (solo only)."""
        if actor is None:
            return self.solo()
        if not isinstance(actor, Actor) or not hmac.compare_digest(actor._seal or "", _sign(actor.name, actor.kind)):
            raise Forbidden(f"{actor!r} was not established by the access policy (sign in or log in)")
        if actor.kind == "system":
            return actor
        if actor.kind == "solo":
            return self.solo()
        return self.session(actor.name)

    def check(self, actor: Actor | None, action: str) -> Actor:
        """The current actor when its role may do ``action``; else ``Forbidden`` naming who, role and act."""
        now = self.current(actor)
        if not allowed(now.role, action):
            raise Forbidden(f"{now.label} may not {action.replace('_', ' ')}; only {holders(action)} may")
        return now


# --------------------------------------------------------------------------- account fields and passwords
def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name) or name in (SOLO_ACTOR, SYSTEM_ACTOR):
        raise InvalidRequest(
            f"user name {name!r} is not accepted; use 1-64 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (not {SOLO_ACTOR!r} or {SYSTEM_ACTOR!r})"
        )
    return name


def check_role(role: str) -> str:
    if role not in ACCOUNT_ROLES:
        raise InvalidRequest(f"role {role!r} is unknown; choose one of {', '.join(ACCOUNT_ROLES)}")
    return role


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise InvalidRequest(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > 1024:
        raise InvalidRequest("the password is longer than 1024 characters")
    return password


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$key`` with a fresh 16-byte salt."""
    check_password(password)
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=KEY_BYTES)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches ``stored``; compares in constant time, never raises on bad input."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt" or not isinstance(password, str):
            return False
        expected = base64.b64decode(key)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)
