"""Guarded mode: hub/telemetry flags off, share links refused, non-loopback connections refused in-process,
and model directories checked for pickled weights and remote code."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

from .errors import EgressRefused, UnsafeModel

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
}
PICKLE_SUFFIXES = frozenset({".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})

_lock = threading.Lock()
_saved: dict[str, Any] | None = None


def is_loopback(host: Any) -> bool:
    """True for 127.0.0.0/8, ::1 (also IPv4-mapped), and the name 'localhost'; False for any other name,
    which is never resolved (resolving would itself send a DNS query out)."""
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    name = name.split("%", 1)[0]  # drop an IPv6 zone id
    try:
        addr = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def _check_address(family: int | None, address: Any) -> None:
    if family is not None and family == getattr(socket, "AF_UNIX", object()):
        return
    if isinstance(address, (str, bytes)):  # a unix socket path
        return
    if not isinstance(address, tuple) or not address:
        raise EgressRefused(f"connection to address {address!r} refused: guarded mode allows loopback only")
    host, port = address[0], address[1] if len(address) > 1 else None
    if not is_loopback(host):
        raise EgressRefused(
            f"connection to {host}:{port} refused: guarded mode allows only loopback "
            "(127.0.0.0/8, ::1, localhost) and unix sockets"
        )


def install_guard() -> None:
    """Set the offline/telemetry environment flags and refuse non-loopback connects in this process.

    Idempotent: a second call does nothing. Undo with `uninstall_guard()` (tests only)."""
    global _saved
    with _lock:
        if _saved is not None:
            return
        saved: dict[str, Any] = {
            "env": {k: os.environ.get(k) for k in OFFLINE_ENV},
            "connect": socket.socket.connect,
            "connect_ex": socket.socket.connect_ex,
            "sendto": socket.socket.sendto,
            "create_connection": socket.create_connection,
        }
        os.environ.update(OFFLINE_ENV)
        orig_connect, orig_connect_ex, orig_sendto = saved["connect"], saved["connect_ex"], saved["sendto"]
        orig_create = saved["create_connection"]

        def connect(self, address):  # type: ignore[no-untyped-def]
            _check_address(self.family, address)
            return orig_connect(self, address)

        def connect_ex(self, address):  # type: ignore[no-untyped-def]
            _check_address(self.family, address)
            return orig_connect_ex(self, address)

        def sendto(self, data, *args):  # type: ignore[no-untyped-def]
            _check_address(self.family, args[-1])
            return orig_sendto(self, data, *args)

        def create_connection(address, *args, **kwargs):  # type: ignore[no-untyped-def]
            _check_address(None, address)  # before name resolution: no DNS query leaves either
            return orig_create(address, *args, **kwargs)

        socket.socket.connect = connect  # type: ignore[method-assign]
        socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
        socket.socket.sendto = sendto  # type: ignore[method-assign]
        socket.create_connection = create_connection  # type: ignore[assignment]
        _saved = saved


def uninstall_guard() -> None:
    """Restore the socket functions and environment as they were before `install_guard()`."""
    global _saved
    with _lock:
        if _saved is None:
            return
        socket.socket.connect = _saved["connect"]  # type: ignore[method-assign]
        socket.socket.connect_ex = _saved["connect_ex"]  # type: ignore[method-assign]
        socket.socket.sendto = _saved["sendto"]  # type: ignore[method-assign]
        socket.create_connection = _saved["create_connection"]  # type: ignore[assignment]
        for key, value in _saved["env"].items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _saved = None


def guard_installed() -> bool:
    """Whether `install_guard()` is in effect."""
    return _saved is not None


def refuse_share(share: bool) -> None:
    """Raise if a public share link (e.g. Gradio `share=True`) is requested."""
    if share:
        raise EgressRefused("share=True refused: guarded mode serves on this machine only; expected share=False")


def check_model_dir(path: Path | str, allow_weights_only: frozenset[str] | set[str] = frozenset()) -> list[Path]:
    """Refuse a model directory holding pickled weights (unless listed in `allow_weights_only`, by name or
    path relative to `path`, for a `weights_only` load) or remote code (`*.py`, `auto_map` in a JSON config).

    Returns the files checked."""
    root = Path(path)
    if not root.is_dir():
        raise UnsafeModel(f"model dir {root} does not exist or is not a directory")
    checked: list[Path] = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        suffix = file.suffix.lower()
        if suffix in PICKLE_SUFFIXES and rel not in allow_weights_only and file.name not in allow_weights_only:
            raise UnsafeModel(
                f"model dir {root}: {rel} is a pickle-format file ({suffix}); accepted are .safetensors files, "
                "or pickles a catalogue entry allows for a weights_only load"
            )
        if suffix == ".py":
            raise UnsafeModel(f"model dir {root}: {rel} is Python code; remote code is refused in guarded mode")
        if suffix == ".json":
            try:
                config = json.loads(file.read_text("utf-8"))
            except (ValueError, UnicodeDecodeError):
                config = None
            if isinstance(config, dict) and "auto_map" in config:
                raise UnsafeModel(
                    f"model dir {root}: {rel} has 'auto_map' (custom code classes {sorted(config['auto_map'])}); "
                    "remote code is refused in guarded mode"
                )
        checked.append(file)
    return checked
