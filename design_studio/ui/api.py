"""Named API endpoints for ``gradio_client`` (the same services as the page, the same role checks).

The signed-in user comes from Gradio's request (``request.username``), never from a parameter.
"""
from __future__ import annotations

import gradio as gr

from ..services import Studio
from ..services.jobs import cancellable
from .common import actor_of, user_errors


def design_dict(studio: Studio, design) -> dict:
    return {
        "id": design.id, "kind": design.kind, "status": design.status, "prompt": design.prompt,
        "seed": design.seed, "parent_id": design.parent_id, "created_by": design.created_by,
        "created_at": design.created_at.isoformat(timespec="seconds"), "file": design.file,
        "flags": (design.params or {}).get("flags") or [],
    }


def decision_dict(d) -> dict:
    return {"design_id": d.design_id, "action": d.action, "comment": d.comment, "actor": d.actor, "role": d.role,
            "at": d.created_at.isoformat(timespec="seconds")}


def register_api(studio: Studio) -> None:
    """Call inside the Blocks context; every endpoint is named after what it does."""

    @user_errors
    def whoami(request: gr.Request) -> dict:
        """The signed-in user and role."""
        actor = actor_of(studio, request)
        return {"user": actor.name if actor.kind == "account" else "", "role": actor.role}

    @user_errors
    def projects(request: gr.Request) -> list[dict]:
        """Every project with its brief."""
        return [{"name": p.name, "brief": p.brief} for p in studio.projects()]

    @user_errors
    def create_project(name: str, brief: str, request: gr.Request) -> dict:
        """A new project (collection) with a brief."""
        p = studio.create_project(name, brief, actor=actor_of(studio, request))
        return {"name": p.name, "brief": p.brief}

    @user_errors
    def list_designs(project: str, text: str, kind: str, status: str, since: str, until: str,
                     request: gr.Request) -> list[dict]:
        """Designs, newest first; empty strings mean 'any'. Dates are YYYY-MM-DD."""
        rows = studio.history(project=project or None, text=text, kind=kind or None, status=status or None,
                              since=since or None, until=until or None)
        return [design_dict(studio, d) for d in rows]

    @user_errors
    def design(design_id: int, request: gr.Request) -> dict:
        """One design: settings, lineage tree and decisions."""
        settings = studio.design_settings(int(design_id))
        settings["lineage"] = studio.lineage_text(int(design_id))
        settings["decisions"] = [decision_dict(d) for d in studio.decisions(int(design_id))]
        return settings

    @user_errors
    def generate_designs(prompt: str, project: str, n: int, seed: int, steps: int,
                         request: gr.Request) -> list[dict]:
        """Text -> n concept designs in a project (GPU queue). seed < 0 or steps <= 0: defaults.

        Progress ('denoising step n of N') shows in ``/jobs``; ``/cancel`` stops it within one step."""
        designs = studio.generate_concepts(
            prompt, project=project or None, n=int(n), seed=None if seed is None or int(seed) < 0 else int(seed),
            steps=None if not steps or int(steps) <= 0 else int(steps), actor=actor_of(studio, request),
            on_progress=cancellable(None),
        )
        return [design_dict(studio, d) for d in designs]

    @user_errors
    def mesh_design(design_id: int, size_cm: float, request: gr.Request) -> dict:
        """Image design -> textured GLB design (GPU queue)."""
        mesh = studio.make_mesh(int(design_id), size_cm=float(size_cm or 30.0), actor=actor_of(studio, request),
                                on_progress=cancellable(None))
        return design_dict(studio, mesh)

    @user_errors
    def shortlist(design_id: int, note: str, request: gr.Request, override_reason: str = "") -> dict:
        """Put a design on the review board (a near-copy needs a creative director's override reason)."""
        return design_dict(studio, studio.shortlist(int(design_id), actor=actor_of(studio, request), note=note or "",
                                                    override_reason=override_reason or None))

    @user_errors
    def decide(design_id: int, decision: str, comment: str, request: gr.Request) -> dict:
        """approved | rejected | changes_requested, with a comment (creative directors only)."""
        return decision_dict(studio.decide(int(design_id), decision, comment, actor=actor_of(studio, request)))

    @user_errors
    def board(project: str, status: str, request: gr.Request) -> list[dict]:
        """The shortlist as cards."""
        return [dict(design_dict(studio, c.design), project=c.project, lineage=c.lineage,
                     mesh_id=c.mesh.id if c.mesh else None, shortlisted_by=c.shortlisted_by,
                     decisions=[decision_dict(d) for d in c.decisions])
                for c in studio.board(project=project or None, status=status or None)]

    @user_errors
    def jobs(request: gr.Request) -> list[dict]:
        """GPU jobs of this process and how they ended."""
        return [{"id": j.id, "kind": j.kind, "actor": j.actor, "status": j.status, "progress": j.progress,
                 "message": j.message} for j in studio.jobs.jobs()]

    @user_errors
    def cancel(request: gr.Request) -> int:
        """Stop the running jobs of this client session at their next step; returns how many."""
        return len(studio.jobs.cancel(owner=getattr(request, "session_hash", None) or ""))

    cpu = dict(concurrency_id="cpu", concurrency_limit=4)
    for fn in (whoami, projects, create_project, list_designs, design, shortlist, decide, board, jobs):
        gr.api(fn, api_name=fn.__name__, **cpu)
    gr.api(cancel, api_name="cancel", queue=False)
    for fn in (generate_designs, mesh_design):
        gr.api(fn, api_name=fn.__name__, concurrency_id="gpu", concurrency_limit=1)
