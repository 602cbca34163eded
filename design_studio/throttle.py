"""Sign-in throttling: after a few failures, one try per growing interval, per account and per address.

``LoginThrottle`` keeps, for every key (an account name, a client address), the failures since the
last success. The first ``free_failures`` are free; after that a try is let through only once the
backoff has passed (``base_delay`` seconds, doubled at each further failure, capped at ``max_delay``).
A refused try is answered before any password is checked. A success clears the account and the
address. Tries that are still being checked count as failures until they end, so a burst of parallel
wrong passwords cannot slip through while the first ones are being hashed.

``guard_login`` wraps an ``(username, password) -> bool`` check (Gradio's ``auth=``) with a throttle;
the client address comes from ``client_address``, which ``ClientAddressMiddleware`` sets for each
HTTP request (Gradio's auth callable is given only the name and the password).
"""
from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass
from typing import Callable

client_address: contextvars.ContextVar[str] = contextvars.ContextVar("client_address", default="unknown")

FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 300.0
MAX_KEYS = 10_000


class LoginThrottled(Exception):
    """A sign-in try came before the backoff for its account or address had passed."""

    def __init__(self, retry_after: float):
        self.retry_after = retry_after
        super().__init__(f"too many failed sign-ins; try again in {max(1, round(retry_after))} s")


@dataclass
class _State:
    failures: int = 0
    in_flight: int = 0
    next_allowed: float = 0.0
    touched: float = 0.0


class LoginThrottle:
    """Thread-safe failure counts and backoff per key; ``clock`` is injectable for tests."""

    def __init__(self, *, free_failures: int = FREE_FAILURES, base_delay: float = BASE_DELAY_S,
                 max_delay: float = MAX_DELAY_S, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = MAX_KEYS):
        if free_failures < 0 or base_delay <= 0 or max_delay < base_delay:
            raise ValueError(f"free_failures {free_failures}, base_delay {base_delay}, max_delay {max_delay}: "
                             "need free_failures >= 0 and 0 < base_delay <= max_delay")
        self.free_failures = free_failures
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.clock = clock
        self.max_keys = max_keys
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def delay(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failures (0 while they are free)."""
        over = failures - self.free_failures
        if over < 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** min(over, 64))

    def begin(self, keys: list[str]) -> None:
        """Reserve one try for every key, or raise ``LoginThrottled`` (nothing reserved then)."""
        with self._lock:
            now = self.clock()
            states = [self._state(key, now) for key in keys]
            wait = max((s.next_allowed - now for s in states
                        if s.failures + s.in_flight >= self.free_failures), default=0.0)
            if wait > 0:
                raise LoginThrottled(wait)
            for s in states:
                used = s.failures + s.in_flight
                if used >= self.free_failures:  # this try takes the slot; the next waits behind it
                    s.next_allowed = now + self.delay(used)
                s.in_flight += 1
                s.touched = now

    def end(self, keys: list[str], success: bool) -> None:
        """Record the outcome of a try that ``begin`` let through."""
        with self._lock:
            now = self.clock()
            for key in keys:
                s = self._state(key, now)
                s.in_flight = max(0, s.in_flight - 1)
                s.touched = now
                if success:
                    s.failures, s.next_allowed = 0, 0.0
                else:
                    s.failures += 1
                    if s.failures >= self.free_failures:
                        s.next_allowed = max(s.next_allowed, now + self.delay(s.failures))

    def failures(self, key: str) -> int:
        with self._lock:
            state = self._states.get(key)
            return state.failures if state else 0

    def _state(self, key: str, now: float) -> _State:
        state = self._states.get(key)
        if state is None:
            if len(self._states) >= self.max_keys:
                self._forget_idle(now)
            state = self._states[key] = _State(touched=now)
        return state

    def _forget_idle(self, now: float) -> None:
        """Drop keys that hold no backoff any more (bounded memory under a flood of made-up names)."""
        for key in [k for k, s in self._states.items()
                    if s.in_flight == 0 and s.next_allowed <= now and now - s.touched > self.max_delay]:
            del self._states[key]
        if len(self._states) >= self.max_keys:  # still full: the oldest clean entries go first
            clean = sorted((s.touched, k) for k, s in self._states.items() if s.in_flight == 0 and s.failures == 0)
            for _, key in clean[: max(1, len(clean) // 2)]:
                del self._states[key]


def login_keys(username: str, address: str) -> list[str]:
    return [f"account:{(username or '').strip()}", f"address:{address}"]


def guard_login(check: Callable[[str, str], bool], throttle: LoginThrottle) -> Callable[[str, str], bool]:
    """``check`` behind ``throttle``; a throttled try raises an HTTP 429 without calling ``check``."""

    def guarded(username: str, password: str) -> bool:
        keys = login_keys(username, client_address.get())
        try:
            throttle.begin(keys)
        except LoginThrottled as exc:
            from fastapi import HTTPException

            seconds = max(1, int(exc.retry_after + 0.999))
            raise HTTPException(status_code=429, detail=f"Too many failed sign-ins. Try again in {seconds} s.",
                                headers={"Retry-After": str(seconds)}) from None
        ok = False
        try:
            ok = bool(check(username, password))
        finally:
            throttle.end(keys, ok)
        return ok

    guarded.throttle = throttle  # type: ignore[attr-defined]
    return guarded


class ClientAddressMiddleware:
    """ASGI middleware: sets ``client_address`` to the peer address of each HTTP request.

    The studio binds to loopback or a LAN address without a proxy in front, so the peer address is
    the client's; forwarded-for headers are not trusted (any client could set them).
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            client = scope.get("client")
            token = client_address.set(str(client[0]) if client else "unknown")
            try:
                await self.app(scope, receive, send)
            finally:
                client_address.reset(token)
            return
        await self.app(scope, receive, send)
