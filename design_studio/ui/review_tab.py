"""Review: the shortlist as a board, side-by-side comparison, and the creative director's decision."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..services import Studio
from ..errors import StudioError
from .common import actor_of, user_errors

CPU = dict(concurrency_id="cpu", concurrency_limit=4)
EMPTY_BOARD = ("**The review board is empty.** Designers put designs here with *Add to shortlist* "
               "(in the Studio tab under the gallery, or in *Projects & history*).")
DECISION_LABELS = [("Approve", "approved"), ("Request changes", "changes_requested"), ("Reject", "rejected")]
STATUS_FILTERS = [("Waiting for review", "shortlisted"), ("Approved", "approved"),
                  ("Changes requested", "changes_requested"), ("Rejected", "rejected"), ("Everything", "")]


@dataclass
class ReviewTab:
    outputs: list
    refresh: object


def image_of(studio: Studio, design) -> str:
    """The picture of a card: the design itself, or for a mesh its source image."""
    if design.kind == "image":
        return str(studio.store.file_path(design))
    parent = studio.store.design(design.parent_id) if design.parent_id else None
    return str(studio.store.file_path(parent)) if parent is not None and parent.kind == "image" else ""


def turntable_of(studio: Studio, card) -> str | None:
    """A turntable preview (a file in the store named by ``params["turntable"]``) of the card's mesh or design."""
    from ..errors import NotFound

    for design in (card.mesh, card.design):
        rel = (design.params or {}).get("turntable") if design is not None else None
        if rel:
            try:
                return str(studio.store.files.path(str(rel)))
            except NotFound:
                continue
    return None


def card_md(studio: Studio, card) -> str:
    d = card.design
    lines = [f"### #{d.id} · {d.status.replace('_', ' ')}", f"**Prompt:** {d.prompt or '—'}",
             f"**Project:** {card.project} · **seed** {d.seed} · **by** {d.created_by or '—'}",
             f"**Lineage:** {' → '.join(f'#{i}' for i in card.lineage)}",
             f"**Shortlisted by** {card.shortlisted_by or '—'}" + (f": “{card.note}”" if card.note else ""),
             "**Brand-guard flags:** " + (", ".join(card.flags) if card.flags else "none")]
    lines += bom_md(card)
    for dec in card.decisions:
        lines.append(f"- {dec.action.replace('_', ' ')} by {dec.actor or 'someone'}, {dec.created_at:%Y-%m-%d %H:%M}"
                     + (f": “{dec.comment}”" if dec.comment else ""))
    return "\n\n".join(lines)


def bom_md(card) -> list[str]:
    """The bill of materials of the card's design and its mesh, with a warning when a part restricts it."""
    from brand_guard.bom import bom_lines, bom_restrictions

    out = []
    for label, design in (("design", card.design), ("3D", card.mesh)):
        bom = (design.params or {}).get("bom") if design is not None else None
        if not bom:
            continue
        restrictions = bom_restrictions(bom)
        if restrictions:
            out.append(f"**⚠ RESTRICTED {label} #{design.id}:** " + "; ".join(restrictions))
        parts = "\n".join(f"- `{line}`" for line in bom_lines(bom)[:-1])
        out.append(f"<details><summary>Bill of materials ({label} #{design.id})</summary>\n\n{parts}\n\n</details>")
    return out


def trace_md(found) -> str:
    """A traced file as a card: the design, who made it, when, with which model, and its signature."""
    if not found.traced:
        return f"**{found.status.capitalize()}.** The file carries no watermark of this studio."
    verdict = {"valid": "the signed record verifies", "tampered": "**the signed record does NOT verify**"}.get(
        found.signature, "no signed record to check")
    return "\n\n".join([
        f"### Design #{found.design_id} ({found.kind})",
        f"**Made by** {found.created_by or '—'} · **on** {found.created_at} · **model** {found.model or '—'}",
        f"**Prompt:** {found.prompt or '—'}",
        f"**uid** `{found.uid}` · mark found in {found.source} · {verdict}",
    ])


def decisions_log(studio: Studio) -> str:
    found = [d for d in studio.decisions() if d.action != "shortlisted"][:20]
    if not found:
        return "_No decisions yet._"
    return "\n".join(f"- design **#{d.design_id}** — **{d.action.replace('_', ' ')}** by {d.actor} "
                     f"({d.created_at:%Y-%m-%d %H:%M})" + (f": “{d.comment}”" if d.comment else "") for d in found)


def build_review_tab(studio: Studio) -> ReviewTab:
    with gr.Row():
        status = gr.Dropdown(STATUS_FILTERS, value="shortlisted", label="Show", scale=1, elem_id="board-status")
        refresh_btn = gr.Button("Refresh board", scale=0, min_width=140, elem_id="board-refresh")
    empty = gr.Markdown(EMPTY_BOARD, elem_id="board-empty")
    board = gr.Gallery(label="Shortlist", columns=4, height=300, object_fit="contain", allow_preview=False,
                       elem_id="board")
    board_ids = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            card = gr.Markdown("Click a card to see its prompt, lineage, flags and history.", elem_id="card")
        with gr.Column(scale=2, min_width=300):
            card_3d = gr.Model3D(label="3D", height=260, visible=False, elem_id="card-3d")
            card_turntable = gr.Image(label="Turntable", height=260, visible=False, interactive=False,
                                      elem_id="card-turntable")

    gr.Markdown("### Compare")
    with gr.Row():
        compare_ids = gr.CheckboxGroup([], label="Designs to compare (two or more)", elem_id="compare-ids", scale=4)
        compare_btn = gr.Button("Compare side by side", scale=1, elem_id="compare")
    compare = gr.Gallery(label="Side by side", columns=2, height=360, object_fit="contain", allow_preview=False,
                         visible=False, elem_id="compare-gallery")
    compare_table = gr.Markdown("", elem_id="compare-table")

    gr.Markdown("### Decide")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300, elem_classes=["panel"]):
            target = gr.Dropdown([], label="Design", elem_id="decide-id")
            decision = gr.Radio(DECISION_LABELS, value="approved", label="Decision", elem_id="decision")
            comment = gr.Textbox(label="Comment (required to reject or request changes)", lines=3, max_length=5000,
                                 elem_id="decide-comment")
            decide = gr.Button("Record decision", variant="primary", elem_id="decide")
            result = gr.Markdown("", elem_id="decide-result")
        with gr.Column(scale=3, min_width=320):
            gr.Markdown("#### Recent decisions (visible to everyone)")
            log = gr.Markdown(decisions_log(studio), elem_id="decisions-log")

    def board_values(st, username=None):
        cards = studio.board(status=st or None)
        items = [(image_of(studio, c.design), f"#{c.design.id} · {c.design.status.replace('_', ' ')}")
                 for c in cards if image_of(studio, c.design)]
        ids = [c.design.id for c in cards if image_of(studio, c.design)]
        choices = [(f"#{c.design.id} — {(c.design.prompt or '')[:40]}", c.design.id) for c in cards]
        pending = [(f"#{c.design.id} — {(c.design.prompt or '')[:40]}", c.design.id)
                   for c in studio.board(status="shortlisted")]
        note = "" if cards else (EMPTY_BOARD if st == "shortlisted" else "Nothing in this state yet.")
        return (items, ids, note, gr.CheckboxGroup(choices=choices, value=[]),
                gr.Dropdown(choices=pending, value=pending[0][1] if pending else None), decisions_log(studio))

    board_outputs = [board, board_ids, empty, compare_ids, target, log]
    refresh_btn.click(user_errors(board_values), [status], board_outputs, api_name="review_board", **CPU)
    status.change(user_errors(board_values), [status], board_outputs, api_name=False, **CPU)

    @user_errors
    def on_card(ids, evt: gr.SelectData):
        if not ids or evt.index is None or evt.index >= len(ids):
            return gr.update(), gr.update(), gr.update()
        found = [c for c in studio.board() if c.design.id == ids[evt.index]]
        if not found:
            return "This design is no longer on the board.", gr.Model3D(visible=False), gr.Image(visible=False)
        c = found[0]
        mesh = str(studio.store.file_path(c.mesh)) if c.mesh else None
        turntable = turntable_of(studio, c)
        return (card_md(studio, c), gr.Model3D(value=mesh, visible=mesh is not None),
                gr.Image(value=turntable, visible=turntable is not None))

    board.select(on_card, [board_ids], [card, card_3d, card_turntable], api_name=False, **CPU)

    @user_errors
    def on_compare(ids):
        ids = [int(i) for i in ids or []]
        if len(ids) < 2:
            raise gr.Error("Tick two or more designs to compare.")
        designs = [studio.store.design(i) for i in ids]
        items = [(image_of(studio, d), f"#{d.id} · seed {d.seed}") for d in designs if image_of(studio, d)]
        head = "| | " + " | ".join(f"#{d.id}" for d in designs) + " |"
        sep = "|---" * (len(designs) + 1) + "|"
        fields = [("status", lambda d: d.status.replace("_", " ")), ("prompt", lambda d: (d.prompt or "")[:60]),
                  ("seed", lambda d: d.seed), ("steps", lambda d: (d.params or {}).get("steps", "—")),
                  ("guidance", lambda d: (d.params or {}).get("guidance", "—")), ("model", lambda d: d.model),
                  ("by", lambda d: d.created_by or "—")]
        body = ["| " + name + " | " + " | ".join(str(get(d)).replace("|", "/") for d in designs) + " |"
                for name, get in fields]
        return gr.Gallery(value=items, columns=min(4, max(2, len(items))), visible=True), "\n".join([head, sep, *body])

    compare_btn.click(on_compare, [compare_ids], [compare, compare_table], api_name="compare", **CPU)

    @user_errors
    def on_decide(design_id, choice, text, request: gr.Request):
        if design_id is None:
            raise gr.Error("Choose a design waiting for review.")
        made = studio.decide(int(design_id), choice, text, actor=actor_of(studio, request))
        return f"Recorded: design #{made.design_id} **{made.action.replace('_', ' ')}** by {made.actor}."

    def after_decide(st):
        return ("", *board_values(st))

    # Only the result line carries an error, so a refusal never blanks the board or the comment.
    decide.click(on_decide, [target, decision, comment], [result], api_name="decide_ui", **CPU).success(
        user_errors(after_decide), [status], [comment, *board_outputs], api_name=False, **CPU)

    gr.Markdown("### Trace an image")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300, elem_classes=["panel"]):
            leaked = gr.File(label="A copy found outside (PNG, JPEG, WEBP, GLB or USDZ)", file_count="single",
                             file_types=[".png", ".jpg", ".jpeg", ".webp", ".glb", ".usdz"], elem_id="trace-file")
            trace_btn = gr.Button("Trace", elem_id="trace")
        with gr.Column(scale=3, min_width=320):
            traced = gr.Markdown("The watermark survives crops, resizes, screenshots and re-encoding: drop a copy "
                                 "to see which design it is, who made it and when.", elem_id="trace-result")

    def on_trace(path, request: gr.Request):
        studio.access.check(actor_of(studio, request), "trace")
        if not path:
            raise StudioError("choose a file to trace")
        return trace_md(studio.tracer.trace(path))

    trace_btn.click(user_errors(on_trace), [leaked], [traced], api_name="trace", **CPU)

    def refresh(username):
        return board_values("shortlisted", username)

    return ReviewTab(outputs=board_outputs, refresh=refresh)
