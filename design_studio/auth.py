"""Local accounts: scrypt password hashes and who may do what (roles are checked in the service layer)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from .errors import InvalidRequest, StudioError
from .store.models import ROLES

# scrypt cost: n=2**14, r=8 takes ~50 ms and 16 MiB per check, which makes guessing slow but
# keeps sign-in instant. The parameters travel with each hash, so they can be raised later.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_BYTES = 2**14, 8, 1, 32
MIN_PASSWORD_CHARS = 8
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: What each role may do. A designer creates and shortlists; only a creative director decides;
#: an admin manages accounts (and may create and shortlist, but does not take creative decisions).
PERMISSIONS: dict[str, set[str]] = {
    "designer": {"create", "shortlist", "view"},
    "creative_director": {"create", "shortlist", "view", "decide"},
    "admin": {"create", "shortlist", "view", "manage_users"},
}


class Forbidden(StudioError, PermissionError):
    """The signed-in user's role does not allow the act."""


def check_name(name: str) -> str:
    name = (name or "").strip()
    if not NAME_PATTERN.match(name):
        raise InvalidRequest(
            f"user name {name!r} is not accepted; use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidRequest(f"role {role!r} is unknown; choose one of {', '.join(ROLES)}")
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


def allowed(role: str | None, act: str) -> bool:
    return act in PERMISSIONS.get(role or "", set())


def require(role: str | None, act: str, who: str = "") -> None:
    """Raise ``Forbidden`` naming the user, the role and the act when the role may not do it."""
    if not allowed(role, act):
        holders = [r.replace("_", " ") for r, acts in PERMISSIONS.items() if act in acts]
        person = f"{who!r} ({role or 'no account'})" if who else (role or "an anonymous user")
        raise Forbidden(f"{person} may not {act.replace('_', ' ')}; only a {' or '.join(holders)} may")
