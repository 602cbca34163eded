"""Assembles the studio page from its tabs, the signed-in user line, the Stop button and the job line."""
from __future__ import annotations

import functools
import inspect
import threading

import gradio as gr

from ..services import Studio
from .admin_tab import build_admin_tab
from .api import register_api
from .common import end_sessions
from .batch_tab import build_batch_tab
from .history_tab import build_history_tab
from .ledger_tab import build_ledger_tab
from .review_tab import build_review_tab
from .sessions import SessionFolders
from .studio_tab import build_studio_tab

ROLE_NAMES = {"designer": "Designer", "creative_director": "Creative director", "admin": "Admin"}


def model_banner(studio: Studio) -> str:
    """One line per missing model, or the profile and licences when all are present."""
    statuses = studio.model_status()
    missing = [st for st in statuses if not st.available]
    if missing:
        lines = [f"**Models missing for the `{studio.settings.profile}` profile** — generation will fail until they are here:"]
        lines += [f"- {st.entry.role}: `{st.entry.repo_id}` — {st.how_to_get}" for st in missing]
        return "\n".join(lines)
    licences = "; ".join(f"{st.entry.role}: {st.entry.repo_id} — {st.entry.licence_line}" for st in statuses)
    return f"Profile **{studio.settings.profile}** · {licences}"


def who_line(studio: Studio, username: str | None) -> str:
    if not username:
        return "Working without accounts (solo mode) · add accounts with `studio users add` to require sign-in"
    role = studio.role_of(username)
    return f"Signed in as **{username}** · {ROLE_NAMES.get(role or '', 'no role')} · [Sign out](/logout)"


def track_gpu_jobs(demo: gr.Blocks, studio: Studio) -> list:
    """Wrap every GPU event so it runs as a job (status set once, Stop flag checked at each step)."""
    from gradio.context import LocalContext

    gpu = []
    for block_fn in demo.fns.values():
        if block_fn.concurrency_id != "gpu" or block_fn.fn is None:
            continue
        inner = block_fn.fn
        if inspect.isgeneratorfunction(inner):
            # Streaming events (the Batch tab) watch work that has its own job record and cancel;
            # a plain wrapper would hide that they are generators from Gradio.
            gpu.append(block_fn.get_config())
            continue

        @functools.wraps(inner)
        def run(*args, __inner=inner, __name=block_fn.api_name or block_fn.name, **kwargs):
            request = LocalContext.request.get(None)
            job = studio.jobs.start(str(__name), actor=getattr(request, "username", None) or "",
                                    owner=getattr(request, "session_hash", None) or "")
            return studio.jobs.run(job, __inner, *args, **kwargs)

        block_fn.fn = run
        gpu.append(block_fn.get_config())
    return gpu


def refuse_ended_sessions(demo: gr.Blocks, studio: Studio) -> None:
    """Check the session's account before every event (page and API): once the account is removed, each
    call of its sessions is refused and their sign-in tokens are dropped."""
    from gradio.context import LocalContext

    def check() -> None:
        username = getattr(LocalContext.request.get(None), "username", None)
        if username and studio.store.user(username) is None:
            # The tokens go a moment later: this refusal must still reach the session's open stream.
            threading.Timer(1.0, end_sessions, (username, demo)).start()
            raise gr.Error(f"account {username!r} no longer exists; this session has ended, sign in again")

    for block_fn in demo.fns.values():
        inner = block_fn.fn
        if inner is None:
            continue
        if inspect.isgeneratorfunction(inner):
            @functools.wraps(inner)
            def gate(*args, __inner=inner, **kwargs):
                check()
                yield from __inner(*args, **kwargs)
        elif inspect.iscoroutinefunction(inner):
            @functools.wraps(inner)
            async def gate(*args, __inner=inner, **kwargs):
                check()
                return await __inner(*args, **kwargs)
        else:
            @functools.wraps(inner)
            def gate(*args, __inner=inner, **kwargs):
                check()
                return __inner(*args, **kwargs)
        block_fn.fn = gate


def jobs_line(studio: Studio, demo: gr.Blocks) -> str:
    running = studio.jobs.jobs(status="running")
    waiting = 0
    queue = getattr(demo, "_queue", None)
    if queue is not None:
        gpu_queue = queue.event_queue_per_concurrency_id.get("gpu")
        waiting = len(gpu_queue.queue) if gpu_queue is not None else 0
    if not running and not waiting:
        return "GPU idle"
    parts = [f"running: {j.kind} for {j.actor or 'someone'} ({j.progress or 'starting'})" for j in running]
    if waiting:
        parts.append(f"{waiting} waiting")
    return "GPU · " + " · ".join(parts)


def build_app(studio: Studio) -> gr.Blocks:
    with gr.Blocks(title="Design Studio", analytics_enabled=False) as demo:
        with gr.Row(elem_id="masthead", equal_height=True):
            with gr.Column(scale=3, min_width=320):
                gr.Markdown("# Design Studio\nPrompt → concept images → textured 3D → review. Everything stays on this machine.")
            with gr.Column(scale=2, min_width=280, elem_id="session-box"):
                who = gr.Markdown("", elem_id="who")
                with gr.Row():
                    jobs = gr.Markdown("GPU idle", elem_id="jobs")
                    stop = gr.Button("Stop my job", variant="stop", size="sm", elem_id="stop", min_width=100)
        gr.Markdown(model_banner(studio), elem_id="model-banner")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Studio", id="studio"):
                build_studio_tab(studio)
            with gr.Tab("Projects & history", id="history", elem_id="tab-history"):
                history = build_history_tab(studio)
            with gr.Tab("Review", id="review", elem_id="tab-review"):
                review = build_review_tab(studio)
            with gr.Tab("Ledger", id="ledger", elem_id="tab-ledger"):
                build_ledger_tab(studio)
            with gr.Tab("Batch", id="batch", elem_id="tab-batch"):
                build_batch_tab(studio)
            with gr.Tab("Admin", id="admin", elem_id="tab-admin", visible=False) as admin_tab:
                admin = build_admin_tab(studio)
        register_api(studio)
        from ..app import sessions_dir

        folders = SessionFolders(sessions_dir(studio.settings), studio.accounts_enabled)
        demo.session_folders = folders

        def on_load(request: gr.Request):
            folders.open(getattr(request, "session_hash", None), getattr(request, "username", None))
            username = getattr(request, "username", None)
            is_admin = studio.role_of(username) == "admin"
            return (who_line(studio, username), gr.Tab(visible=is_admin), *history.refresh(username),
                    *review.refresh(username), *admin.refresh(username))

        demo.load(on_load, None, [who, admin_tab, *history.outputs, *review.outputs, *admin.outputs],
                  api_visibility="private", queue=False)

        def on_unload(request: gr.Request):
            folders.close(getattr(request, "session_hash", None), getattr(request, "username", None))

        demo.unload(on_unload)

        gpu_events = track_gpu_jobs(demo, studio)

        def on_stop(request: gr.Request):
            hits = studio.jobs.cancel(owner=getattr(request, "session_hash", None) or "")
            if hits:
                gr.Info(f"Stopping {', '.join(j.kind for j in hits)} at the next step; nothing from it is saved.")
            return jobs_line(studio, demo)

        stop.click(on_stop, None, jobs, queue=False, api_visibility="private")
        if gpu_events:
            stop.click(None, None, None, cancels=gpu_events)
        timer = gr.Timer(2.0)
        timer.tick(lambda: jobs_line(studio, demo), None, jobs, queue=False, api_visibility="private",
                   show_progress="hidden")
        refuse_ended_sessions(demo, studio)
    return demo
