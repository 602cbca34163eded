"""Per-browser-session scratch folders: made on page load, removed when that same session closes.

A folder is named by the session hash, which must look like one the Gradio clients make (letters,
digits and hyphens, starting with a letter or digit); anything else gets no folder. Only a folder
this process created for that hash, and for the same signed-in user, is ever removed, and when the
studio has accounts a call from nobody signed in removes nothing (Gradio runs the page's unload step
from an unauthenticated ``/heartbeat/<hash>`` call).
"""
from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path
from typing import Callable

SESSION_HASH = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{3,63}")


def valid_session_hash(value) -> bool:
    return isinstance(value, str) and SESSION_HASH.fullmatch(value) is not None


class SessionFolders:
    """The scratch folders this process made, by session hash, with the user each was made for."""

    def __init__(self, root: Path, accounts_enabled: Callable[[], bool]):
        self.root = Path(root)
        self.accounts_enabled = accounts_enabled
        self._made: dict[str, str | None] = {}
        self._lock = threading.Lock()

    def open(self, session_hash, username: str | None) -> Path | None:
        """Make (or reuse) the folder of this session; None for a hash no Gradio client makes."""
        if not valid_session_hash(session_hash):
            return None
        if self.accounts_enabled() and not username:
            return None
        folder = self.root / session_hash
        with self._lock:
            if session_hash in self._made and self._made[session_hash] != username:
                return None  # another user's session: neither reuse nor take it over
            self.root.mkdir(parents=True, exist_ok=True)
            folder.mkdir(mode=0o700, exist_ok=True)
            self._made[session_hash] = username
        return folder

    def close(self, session_hash, username: str | None) -> bool:
        """Remove the folder made for this session and user; True when one was removed."""
        if not valid_session_hash(session_hash):
            return False
        if self.accounts_enabled() and not username:
            return False
        with self._lock:
            if session_hash not in self._made or self._made[session_hash] != username:
                return False
            del self._made[session_hash]
        folder = self.root / session_hash
        if folder.parent != self.root or folder.is_symlink():
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True

    def made(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._made)
