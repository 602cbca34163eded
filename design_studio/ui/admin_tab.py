"""Admin: accounts (add, remove) and the models of the active profile. Shown to admins only;
the service refuses anyone else even if they call the endpoints directly."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ..services import Studio
from .common import actor_of, end_sessions, user_errors

CPU = dict(concurrency_id="cpu", concurrency_limit=4)


@dataclass
class AdminTab:
    outputs: list
    refresh: object


def user_rows(studio: Studio) -> list[list]:
    return [[u.name, u.role, u.created_at.strftime("%Y-%m-%d")] for u in studio.users()]


def models_md(studio: Studio) -> str:
    lines = ["| role | model | licence | lineage | on this machine |", "|---|---|---|---|---|"]
    for st in studio.model_status():
        lines.append(f"| {st.entry.role} | `{st.entry.repo_id}` | {st.entry.licence_line} | {st.entry.lineage_line} | "
                     f"{'yes' if st.available else 'missing — ' + st.how_to_get} |")
    return "\n".join(lines)


def build_admin_tab(studio: Studio) -> AdminTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=360):
            gr.Markdown("### Accounts")
            users = gr.Dataframe(headers=["name", "role", "since"], value=[], interactive=False, elem_id="users")
        with gr.Column(scale=2, min_width=300, elem_classes=["panel"]):
            gr.Markdown("#### Add an account")
            name = gr.Textbox(label="Name", max_length=64, elem_id="admin-name")
            role = gr.Radio([("Designer", "designer"), ("Creative director", "creative_director"), ("Admin", "admin")],
                            value="designer", label="Role")
            password = gr.Textbox(label="Password (8+ characters)", type="password", max_length=1024)
            add = gr.Button("Add account", variant="primary", elem_id="admin-add")
            gr.Markdown("#### Remove an account")
            remove_name = gr.Textbox(label="Name", max_length=64)
            remove = gr.Button("Remove account", variant="stop")
            feedback = gr.Markdown("")
    gr.Markdown("### Models of this profile")
    gr.Markdown(models_md(studio))

    @user_errors
    def on_add(n, r, p, request: gr.Request):
        user = studio.add_user(n, r, p, actor=actor_of(studio, request))
        return user_rows(studio), f"Added **{user.name}** ({user.role}).", "", ""

    add.click(on_add, [name, role, password], [users, feedback, name, password], api_name="add_user", **CPU)

    @user_errors
    def on_remove(n, request: gr.Request):
        studio.remove_user((n or "").strip(), actor=actor_of(studio, request))
        end_sessions((n or "").strip())
        return user_rows(studio), f"Removed **{n}**.", ""

    remove.click(on_remove, [remove_name], [users, feedback, remove_name], api_name="remove_user", **CPU)

    def refresh(username):
        # Only an admin sees the list of accounts, even in the page's first state.
        return (user_rows(studio) if studio.role_of(username) == "admin" else [],)

    return AdminTab(outputs=[users], refresh=refresh)
