"""Projects and history: create a project with a brief, search past designs, open one to see its
settings and lineage, make it again, send it to 3D, or put it on the shortlist."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..services import Studio
from .common import actor_of, progress_adapter, user_errors

ANY = "any"
EMPTY_HISTORY = ("**No designs yet.** Start in the *Studio* tab: write a prompt and press *Generate*. "
                 "Every result lands here, in its project, with the settings that made it.")
COLUMNS = ["id", "kind", "status", "project", "prompt", "seed", "by", "created"]
CPU = dict(concurrency_id="cpu", concurrency_limit=4)


@dataclass
class HistoryTab:
    outputs: list
    refresh: object  # (username) -> values for ``outputs``


def project_choices(studio: Studio) -> list[str]:
    return [ANY] + [p.name for p in studio.projects()]


def rows(studio: Studio, designs) -> list[list]:
    names = {p.id: p.name for p in studio.projects()}
    return [[d.id, d.kind, d.status, names.get(d.project_id, ""), (d.prompt or "")[:80], d.seed, d.created_by,
             d.created_at.strftime("%Y-%m-%d %H:%M")] for d in designs]


def decisions_md(studio: Studio, design_id: int) -> str:
    found = studio.decisions(design_id)
    if not found:
        return "_No review yet._"
    return "\n".join(f"- **{d.action.replace('_', ' ')}** by {d.actor or 'someone'} ({d.role}), "
                     f"{d.created_at:%Y-%m-%d %H:%M}" + (f": “{d.comment}”" if d.comment else "") for d in found)


def build_history_tab(studio: Studio) -> HistoryTab:
    d = studio.defaults
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280, elem_classes=["panel"]):
            gr.Markdown("### Projects")
            project = gr.Dropdown(project_choices(studio), value=ANY, label="Project", elem_id="history-project",
                                  allow_custom_value=False)
            brief = gr.Markdown("", elem_id="project-brief")
            with gr.Accordion("New project", open=False, elem_id="new-project"):
                new_name = gr.Textbox(label="Name", placeholder="e.g. SS27 handbags", max_length=200,
                                      elem_id="new-project-name")
                new_brief = gr.Textbox(label="Brief", lines=3, max_length=5000, elem_id="new-project-brief",
                                       placeholder="who it is for, materials, mood, price band")
                create = gr.Button("Create project", elem_id="create-project")
        with gr.Column(scale=3, min_width=420):
            with gr.Row():
                text = gr.Textbox(label="Search prompts", placeholder="e.g. cognac", elem_id="history-text", scale=3)
                kind = gr.Dropdown([ANY, "image", "mesh"], value=ANY, label="Kind", scale=1)
                status = gr.Dropdown([ANY, "draft", "shortlisted", "approved", "rejected", "changes_requested"],
                                     value=ANY, label="Status", scale=1, elem_id="history-status")
            with gr.Row():
                since = gr.Textbox(label="From (YYYY-MM-DD)", scale=1)
                until = gr.Textbox(label="To (YYYY-MM-DD)", scale=1)
                search = gr.Button("Search", variant="primary", scale=1, elem_id="history-search")
            empty = gr.Markdown(EMPTY_HISTORY, elem_id="history-empty")
            table = gr.Dataframe(headers=COLUMNS, value=[], interactive=False, wrap=True, elem_id="history-table",
                                 max_height=320)

    gr.Markdown("### Open a design")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            with gr.Row():
                design_id = gr.Number(label="Design #", value=None, precision=0, elem_id="open-id")
                open_btn = gr.Button("Open", elem_id="open-design")
            image = gr.Image(label="Design", height=300, interactive=False, elem_id="open-image")
            model3d = gr.Model3D(label="3D", height=300, visible=False, elem_id="open-model3d")
        with gr.Column(scale=2, min_width=320):
            lineage = gr.Code(label="Lineage (parent → children)", language=None, elem_id="lineage", lines=6)
            review = gr.Markdown("", elem_id="open-decisions")
            settings_json = gr.JSON(label="Settings", elem_id="open-settings")
        with gr.Column(scale=2, min_width=300, elem_classes=["panel"]):
            gr.Markdown("#### Make it again")
            prompt = gr.Textbox(label="Prompt", lines=2, elem_id="reuse-prompt")
            with gr.Row():
                seed = gr.Number(label="Seed (-1 new)", value=-1, precision=0)
                steps = gr.Number(label="Steps", value=d["steps"], precision=0)
            generate = gr.Button("Generate with these settings", elem_id="reuse-generate")
            mesh = gr.Button("Send to 3D", elem_id="send-to-3d")
            note = gr.Textbox(label="Note for the reviewer", max_length=2000, elem_id="history-note")
            add = gr.Button("Add to shortlist", variant="primary", elem_id="history-shortlist")
            feedback = gr.Markdown("", elem_id="history-feedback")

    filters = [project, text, kind, status, since, until]

    def search_values(proj, txt, knd, st, frm, to):
        found = studio.history(project=None if proj in (None, ANY) else proj, text=txt,
                               kind=None if knd in (None, ANY) else knd, status=None if st in (None, ANY) else st,
                               since=frm, until=to)
        brief_md = ""
        if proj not in (None, ANY):
            match = [p for p in studio.projects() if p.name == proj]
            brief_md = f"**Brief:** {match[0].brief}" if match and match[0].brief else "_This project has no brief yet._"
        if found:
            note_md = f"{len(found)} design(s). Enter a design number below and press *Open*."
        elif any([txt, frm, to]) or st not in (None, ANY) or knd not in (None, ANY):
            note_md = "Nothing matches these filters. Clear the search text or widen the dates."
        else:
            note_md = EMPTY_HISTORY
        return rows(studio, found), note_md, brief_md

    on_search = user_errors(search_values)
    search.click(on_search, filters, [table, empty, brief], api_name="search_history", **CPU)
    project.change(on_search, filters, [table, empty, brief], api_name=False, **CPU)

    created = gr.State(None)

    @user_errors
    def on_create(name, brief_text, request: gr.Request):
        p = studio.create_project(name, brief_text, actor=actor_of(studio, request))
        return p.name, "", ""

    def show_project(name):
        table_rows, note_md, brief_md = search_values(name, "", ANY, ANY, "", "")
        return gr.Dropdown(choices=project_choices(studio), value=name), table_rows, note_md, brief_md

    # The form alone shows a refusal (e.g. a taken name); the list is refreshed only on success.
    create.click(on_create, [new_name, new_brief], [created, new_name, new_brief], api_name="create_project_ui",
                 **CPU).success(show_project, [created], [project, table, empty, brief], api_name=False, **CPU)

    def open_values(did):
        if did is None:
            raise gr.Error("Enter a design number to open.")
        settings = studio.design_settings(int(did))
        design = studio.store.design(int(did))
        path = str(studio.store.file_path(design))
        is_mesh = design.kind == "mesh"
        return (gr.Image(value=None if is_mesh else path, visible=not is_mesh),
                gr.Model3D(value=path if is_mesh else None, visible=is_mesh),
                studio.lineage_text(int(did)), decisions_md(studio, int(did)), settings,
                settings["prompt"], settings["seed"] if settings["seed"] is not None else -1,
                settings["steps"] or d["steps"])

    opened = [image, model3d, lineage, review, settings_json, prompt, seed, steps]
    open_btn.click(user_errors(open_values), [design_id], opened, api_name="open_design", **CPU)
    def on_row(evt: gr.SelectData):
        return evt.row_value[0] if evt.row_value else None

    table.select(on_row, None, design_id,
                 api_name=False, queue=False).then(user_errors(open_values), [design_id], opened, api_name=False)

    @user_errors
    def on_generate(did, prompt_text, seed_value, steps_value, request: gr.Request, progress=gr.Progress()):
        base = studio.design_settings(int(did)) if did else {}
        made = studio.generate_concepts(
            prompt_text, n=1, seed=None if seed_value is None or seed_value < 0 else int(seed_value),
            steps=int(steps_value) if steps_value else None, guidance=base.get("guidance"),
            width=base.get("width"), height=base.get("height"), negative_prompt=base.get("negative_prompt") or "",
            project=base.get("project"), actor=actor_of(studio, request),
            on_progress=progress_adapter(progress))
        return made[0].id, f"Made design #{made[0].id} (seed {made[0].seed}); it is open above."

    generate.click(on_generate, [design_id, prompt, seed, steps], [design_id, feedback], api_name="reuse_settings",
                   concurrency_id="gpu").success(user_errors(open_values), [design_id], opened, api_name=False)

    @user_errors
    def on_mesh(did, request: gr.Request, progress=gr.Progress()):
        if did is None:
            raise gr.Error("Open an image design first.")
        made = studio.make_mesh(int(did), actor=actor_of(studio, request),
                                on_progress=progress_adapter(progress))
        return made.id, f"Made 3D design #{made.id} from #{did}; it is open above."

    mesh.click(on_mesh, [design_id], [design_id, feedback], api_name="send_to_3d",
               concurrency_id="gpu").success(user_errors(open_values), [design_id], opened, api_name=False)

    @user_errors
    def on_shortlist(did, note_text, request: gr.Request):
        if did is None:
            raise gr.Error("Open a design first.")
        design = studio.shortlist(int(did), actor=actor_of(studio, request), note=note_text or "")
        return f"Design #{design.id} is on the review board ({design.status}).", decisions_md(studio, design.id)

    add.click(on_shortlist, [design_id, note], [feedback, review], api_name="shortlist_ui", **CPU)

    def refresh(username):
        table_rows, note_md, brief_md = search_values(ANY, "", ANY, ANY, "", "")
        return gr.Dropdown(choices=project_choices(studio), value=ANY), table_rows, note_md, brief_md

    return HistoryTab(outputs=[project, table, empty, brief], refresh=refresh)
