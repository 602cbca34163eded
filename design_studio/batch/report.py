"""The contact sheet of a batch run: one HTML page in the output folder with every image and every failure."""
from __future__ import annotations

import html
import time
from pathlib import Path

from ..store.files import atomic_write

CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px} .meta{color:#666;font-size:13px}
.row{border-top:1px solid #ddd;padding:10px 0}
.row h2{font-size:14px;margin:0 0 6px 0;font-weight:600}
.thumbs{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;text-align:center;font-size:12px;color:#555}
figure img{width:160px;height:160px;object-fit:contain;background:#f4f4f4;border:1px solid #ddd}
.failed{background:#fff3f3} .reason{color:#a00}
"""


def write_contact_sheet(out_dir: Path, job, items, states: dict, summary) -> Path:
    """``OUT/contact-sheet.html``: rows in file order, thumbnails linked to files, failures with reasons."""
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Batch {esc(summary.job)}</title><style>{CSS}</style></head><body>",
        f"<h1>Batch {esc(summary.job)}</h1>",
        f"<p class='meta'>{summary.total_rows} rows · {summary.done_now + summary.done_before} done · "
        f"{len(summary.failed)} failed · {len(summary.invalid)} invalid · {summary.not_run} not run · "
        f"{summary.images} images and {summary.meshes} meshes made in this run · "
        f"written {esc(time.strftime('%Y-%m-%d %H:%M:%S'))}</p>",
    ]
    for problem in summary.invalid:
        parts.append(f"<div class='row failed'><h2>invalid {esc(problem)}</h2></div>")
    for item in items:
        row, rec = item.row, states.get(item.key)
        state = rec["state"] if rec else "not run"
        head = (f"line {row.line} · {esc(row.project)} · {esc(row.prompt)} · seed {row.seed} · "
                f"{row.steps} steps · {row.width}×{row.height}" + (f" · {esc(row.category)}" if row.category else ""))
        if state == "done":
            figures = []
            for img in rec.get("images", []):
                figures.append(f"<figure><a href='{esc(img['file'])}'><img loading='lazy' src='{esc(img['file'])}' "
                               f"alt='seed {img['seed']}'></a><figcaption>#{img['design']} · seed {img['seed']}"
                               "</figcaption></figure>")
            for mesh in rec.get("meshes", []):
                figures.append(f"<figure><a href='{esc(mesh['file'])}'>GLB #{mesh['design']}</a></figure>")
            parts.append(f"<div class='row'><h2>{head}</h2><div class='thumbs'>{''.join(figures)}</div></div>")
        else:
            reason = rec.get("reason", "") if rec and state == "failed" else "left for a rerun"
            parts.append(f"<div class='row failed'><h2>{head}</h2><p class='reason'>{esc(state)}: {esc(reason)}</p></div>")
    parts.append("</body></html>")
    target = Path(out_dir) / "contact-sheet.html"
    atomic_write(target, "\n".join(parts).encode("utf-8"))
    return target
