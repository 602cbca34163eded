"""The Batch tab: upload a job file, validate it, start it, watch progress, cancel, open the results."""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from ..batch.background import BackgroundBatch, run_folder
from ..errors import StudioError
from ..services import Studio
from .common import actor_of, user_errors

HELP = (
    "A **job file** is a CSV (header line) or JSONL (one object per line) with the columns "
    "`prompt, negative_prompt, sketch, category, n, seed, steps, size, adapters, mesh, project`; only `prompt` "
    "is required. Results become designs in each row's project (see the Studio tab). The same file started "
    "again resumes: finished rows are never made twice. For many GPUs use "
    "`accelerate launch … -m design_studio.batch run FILE --out DIR`."
)


def build_batch_tab(studio: Studio) -> None:
    jobs: dict[str, BackgroundBatch] = {}
    root = studio.settings.downloads_dir / "batches"  # served: the contact sheet and copies are downloadable

    gr.Markdown(HELP)
    upload = gr.File(label="Job file (.csv or .jsonl)", file_types=[".csv", ".jsonl", ".ndjson"], type="filepath",
                     elem_id="batch-file")
    skip_invalid = gr.Checkbox(label="Run the valid rows even if some rows are bad", value=False)
    with gr.Row():
        validate = gr.Button("Validate", elem_id="batch-validate")
        start = gr.Button("Start", variant="primary", elem_id="batch-start")
        cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel")
    report = gr.Markdown(elem_id="batch-report")
    status = gr.Markdown(elem_id="batch-status")
    gallery = gr.Gallery(label="Results", columns=6, height=320, elem_id="batch-gallery", allow_preview=True)
    sheet = gr.File(label="Contact sheet and manifest", file_count="multiple", elem_id="batch-sheet")
    current = gr.State("")

    def need_file(path) -> Path:
        if not path:
            raise StudioError("upload a job file (.csv or .jsonl) first")
        return Path(path)

    @user_errors
    def on_validate(path):
        job = studio.load_batch(need_file(path))
        head = (f"**{job.total_rows} rows: {len(job.rows)} valid, {len(job.problems)} bad** · "
                f"{sum(r.n for r in job.rows)} images, {sum(r.n for r in job.rows if r.mesh)} meshes to make")
        return "\n".join([head, ""] + [f"- {p}" for p in job.problems])

    def outputs(job: BackgroundBatch):
        files = [str(p) for p in (job.out_dir / "contact-sheet.html", job.out_dir / "manifest.jsonl") if p.is_file()]
        return job.status_text(), job.result_images(), files or None

    @user_errors
    def begin(path, skip, request) -> tuple[str, BackgroundBatch]:
        actor = studio.access.check(actor_of(studio, request), "create")  # the signed-in account, checked now
        path = need_file(path)
        job = studio.load_batch(path)  # refuse a bad file here, with every bad line shown
        if job.problems and not skip:
            lines = "; ".join(str(p) for p in job.problems[:20])
            raise StudioError(f"{len(job.problems)} bad row(s), nothing was started: {lines}")
        out = run_folder(root, path)
        key = str(out)
        if key in jobs and jobs[key].running:
            raise StudioError("this job file is already running; watch it below or cancel it")
        jobs[key] = BackgroundBatch(studio, path, out, skip_invalid=bool(skip), actor=actor).start()
        return key, jobs[key]

    def on_start(path, skip, request: gr.Request):
        key, batch = begin(path, skip, request)
        # One GPU queue: this event holds the "gpu" slot until the run ends, so Studio-tab work waits.
        while batch.running:
            yield (key, *outputs(batch))
            time.sleep(0.5)
        yield (key, *outputs(batch))

    def on_cancel(key):
        batch = jobs.get(key or "")
        if batch is None or not batch.running:
            return "No batch is running."
        batch.cancel()
        return "Cancelling after the current row; finished rows are kept and the same file resumes."

    upload.change(lambda _path: "", [upload], [report], api_name=False)
    validate.click(on_validate, [upload], [report], api_name="batch_validate")
    start.click(on_start, [upload, skip_invalid], [current, status, gallery, sheet], api_name="batch_start",
                concurrency_id="gpu")
    cancel.click(on_cancel, [current], [report], api_name="batch_cancel", concurrency_limit=None)
