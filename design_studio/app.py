"""Starting the studio: guarded environment, one Studio, the Gradio app bound to loopback by default."""
from __future__ import annotations

import os
import sys

from .settings import REPO_ROOT, Settings

QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "DO_NOT_TRACK": "1",
}


def prepare_environment(settings: Settings) -> None:
    """Offline flags and a private Gradio temp dir, set before gradio or the hub are imported."""
    for key, value in QUIET_ENV.items():
        os.environ[key] = value
    if settings.guarded:  # governance hook: loopback only, share links refused
        from brand_guard.egress import install_guard

        install_guard()
    temp = settings.scratch_dir / "gradio"
    temp.mkdir(parents=True, exist_ok=True)
    os.environ["GRADIO_TEMP_DIR"] = str(temp)


def create(settings: Settings):
    """Build (studio, demo) without serving; tests and ``launch`` share it."""
    prepare_environment(settings)
    from .services import Studio
    from .ui import build_app

    studio = Studio(settings)
    return studio, build_app(studio)


STUDIO_BUSY = "The studio is busy: {size} jobs are already waiting. Try again in a few minutes."
QUEUE_MAX_SIZE = 32


def sessions_dir(settings: Settings):
    """Per-browser-session scratch dirs (created on page load, removed on unload)."""
    return settings.scratch_dir / "sessions"


def blocked_paths(settings: Settings) -> list[str]:
    """What the web server must never serve, even if it sits under an allowed folder."""
    paths = [settings.resolved_models_dir, settings.data_dir / "vault", settings.data_dir / "keys",
             settings.data_dir / ".env", REPO_ROOT / ".env"]
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        db_file = url.removeprefix("sqlite:///")
        paths += [db_file, db_file + "-wal", db_file + "-shm", db_file + "-journal"]
    return [str(p) for p in paths]


UPLOAD_RETENTION_S = 6 * 3600  # uploads and outputs in Gradio's cache older than this are removed
UPLOAD_SWEEP_S = 600


def max_request_bytes(settings: Settings) -> int:
    """The most one upload request may send, all its files together."""
    return (settings.max_request_mb or 2 * settings.max_upload_mb) * 1024 * 1024


def launch_options(settings: Settings, studio=None) -> dict:
    """``demo.launch`` keyword arguments; with a studio that has accounts, sign-in is required.

    Sign-in tries are throttled per account and per client address (``throttle``); an upload request
    is limited in total, not only per file (``web_guard``).
    """
    from starlette.middleware import Middleware

    from .throttle import ClientAddressMiddleware, LoginThrottle, guard_login
    from .web_guard import UploadLimitMiddleware
    options = dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        strict_cors=True,
        ssr_mode=False,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[str(settings.files_dir), str(settings.downloads_dir), str(sessions_dir(settings))],
        blocked_paths=blocked_paths(settings),
        css_paths=[str(REPO_ROOT / "assets" / "ui" / "studio.css")],
        footer_links=["api"],
        app_kwargs={"middleware": [Middleware(ClientAddressMiddleware),
                                   Middleware(UploadLimitMiddleware, limit_bytes=max_request_bytes(settings))]},
    )
    if studio is not None and studio.accounts_enabled():
        options["auth"] = guard_login(studio.access.authenticate, LoginThrottle())
        options["auth_message"] = "Design Studio — sign in with the account your studio admin gave you."
    return options


def configure_queue(demo, *, max_size: int = QUEUE_MAX_SIZE):
    """One queue; GPU events share ``concurrency_id="gpu"`` (limit 1).

    ``max_size`` bounds the GPU jobs waiting; when full, a new GPU job is refused with a clear "studio
    busy" message while CPU calls (history, review, Stop) still pass, so nobody waits behind the GPU
    to browse or to cancel. All waiting events together are bounded too (4 x ``max_size``).
    """
    demo.queue(default_concurrency_limit=1, max_size=4 * max_size)
    queue = demo._queue
    original = queue.push

    def gpu_waiting() -> int:
        gpu = queue.event_queue_per_concurrency_id.get("gpu")
        return len(gpu.queue) if gpu is not None else 0

    async def push(body, request, username):
        fn = demo.fns.get(body.fn_index) if body.fn_index is not None else None
        if fn is not None and fn.concurrency_id == "gpu" and gpu_waiting() >= max_size:
            return False, STUDIO_BUSY.format(size=gpu_waiting()), "queue_full"
        ok, detail, state = await original(body=body, request=request, username=username)
        if state == "queue_full":
            detail = STUDIO_BUSY.format(size=len(queue))
        return ok, detail, state

    queue.push = push  # Gradio has no hook for this; replaced on this instance only
    return demo


def start(settings: Settings, *, max_queue: int = QUEUE_MAX_SIZE, **overrides):
    """Create, queue and launch; returns (studio, demo). ``launch`` and the tests share it."""
    studio, demo = create(settings)
    sessions_dir(settings).mkdir(parents=True, exist_ok=True)
    configure_queue(demo, max_size=max_queue)
    demo.delete_cache = (UPLOAD_SWEEP_S, UPLOAD_RETENTION_S)
    demo.launch(**{**launch_options(settings, studio), **overrides})
    return studio, demo


def launch(settings: Settings, **overrides):
    if settings.guarded:  # governance hook: a public share link would send the archive's outputs off-machine
        from brand_guard.egress import refuse_share

        refuse_share(bool(overrides.get("share")))
    from .services import Studio

    probe = Studio(settings)
    for st in probe.model_status():
        if not st.available:
            print(f"studio: model missing: {st.entry.role} {st.entry.repo_id}: {st.how_to_get}", file=sys.stderr)
    if not probe.accounts_enabled():
        print("studio: no accounts yet, so anyone on this machine can use the studio; "
              "add one with `studio users add NAME --role admin` and restart to require sign-in", file=sys.stderr)
    print(f"Design Studio ({settings.profile} profile) on http://{settings.host}:{settings.port}  data: {settings.data_dir}")
    return start(settings, **overrides)
