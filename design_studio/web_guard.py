"""Request limits in front of the Gradio app: the total size of one upload request.

Gradio checks each uploaded file against ``max_file_size`` but not their sum, and writes every file to
its cache before the handler sees it. ``UploadLimitMiddleware`` refuses an upload whose declared body
is larger than the total allowed (413) or that declares no length (411), before a byte is written.
The refused body is read and thrown away (up to a bound) so the client receives the answer instead of
a reset connection.
"""
from __future__ import annotations

import json

UPLOAD_PATHS = ("/gradio_api/upload",)
DRAIN_LIMIT = 64 * 1024 * 1024


class UploadLimitMiddleware:
    """ASGI middleware limiting the whole body of POST requests to the upload route."""

    def __init__(self, app, *, limit_bytes: int, paths: tuple[str, ...] = UPLOAD_PATHS):
        if limit_bytes <= 0:
            raise ValueError(f"limit_bytes {limit_bytes}: must be positive")
        self.app = app
        self.limit_bytes = limit_bytes
        self.paths = tuple(p.rstrip("/") for p in paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("method") != "POST" or not self._guarded(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
        if length is None or length < 0:
            await _refuse(send, receive, 411, "An upload must declare its Content-Length.", 0)
            return
        if length > self.limit_bytes:
            mb = self.limit_bytes / (1024 * 1024)
            await _refuse(send, receive, 413,
                          f"This upload is {length / (1024 * 1024):.1f} MB in all; one request may send "
                          f"at most {mb:g} MB.", length)
            return
        await self.app(scope, receive, send)

    def _guarded(self, path: str) -> bool:
        path = path.rstrip("/")
        return any(path == p or path.endswith(p) for p in self.paths)


async def _refuse(send, receive, status: int, message: str, declared: int) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
    drained = 0
    while drained < min(declared, DRAIN_LIMIT):
        message_in = await receive()
        if message_in["type"] != "http.request":
            break
        drained += len(message_in.get("body", b""))
        if not message_in.get("more_body", False):
            break
