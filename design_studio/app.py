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


def launch_options(settings: Settings) -> dict:
    db_file = settings.resolved_database_url.removeprefix("sqlite:///")
    return dict(
        server_name=settings.host,
        server_port=settings.port,
        share=False,
        strict_cors=True,
        max_file_size=f"{settings.max_upload_mb}mb",
        allowed_paths=[str(settings.files_dir), str(settings.downloads_dir)],
        blocked_paths=[str(settings.resolved_models_dir), db_file],
        css_paths=[str(REPO_ROOT / "assets" / "ui" / "studio.css")],
        footer_links=["api"],
    )


def launch(settings: Settings, **overrides):
    if settings.guarded:  # governance hook: a public share link would send the archive's outputs off-machine
        from brand_guard.egress import refuse_share

        refuse_share(bool(overrides.get("share")))
    studio, demo = create(settings)
    for st in studio.model_status():
        if not st.available:
            print(f"studio: model missing: {st.entry.role} {st.entry.repo_id}: {st.how_to_get}", file=sys.stderr)
    demo.queue(default_concurrency_limit=1, max_size=64)
    print(f"Design Studio ({settings.profile} profile) on http://{settings.host}:{settings.port}  data: {settings.data_dir}")
    return demo.launch(**{**launch_options(settings), **overrides})
