"""The team's workflow in the service layer: projects, history, lineage, shortlist, decisions with
role checks, and GPU jobs that stop within one denoising step."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from team_server import PASSWORDS, add_team

from design_studio.access import Actor, Forbidden
from design_studio.errors import InvalidRequest, NotFound
from design_studio.services.jobs import Cancelled, JobBoard, cancellable


@pytest.fixture(scope="module")
def loaded_models(tmp_path_factory, models_dir):
    """Models loaded once for the module; each test still gets its own database and files."""
    from design_studio.services import Studio
    from design_studio.settings import Settings

    first = Studio(Settings(data_dir=tmp_path_factory.mktemp("warm"), models_dir=models_dir, profile="tiny",
                            device="cpu"))
    first.models.get("concept"), first.models.get("depth")
    return first.models


@pytest.fixture
def team(studio, loaded_models):
    studio.models.share(loaded_models)
    add_team(studio)
    return studio


def as_(studio, name):
    """The actor of a page session signed in as ``name`` (what Gradio's sign-in gives the handlers)."""
    return studio.access.session(name)


def make(studio, prompt="a cognac top-handle bag", n=2, project=None, actor="ann"):
    """Image designs as generation records them (through the design writer), without running the model."""
    from PIL import Image

    from design_studio.services.designs import NewDesign

    proj = studio.store.project(project)
    who = studio.access.session(actor) if actor else None
    return studio.designs.create([NewDesign(
        kind="image", record_kind="concept", content=Image.new("RGB", (64, 64), (150 + i, 100, 60)),
        project_id=proj.id, prompt=prompt, seed=7 + i, model="tiny",
        params=dict(prompt=prompt, seed=7 + i, steps=2, guidance=5.0, width=64, height=64),
    ) for i in range(n)], who)


def test_projects_have_a_brief_and_every_design_belongs_to_one(team):
    p = team.create_project("SS27 handbags", "structured leather, cognac and black", actor=as_(team, "ann"))
    assert p.brief.startswith("structured")
    with pytest.raises(InvalidRequest, match="already exists"):
        team.create_project("SS27 handbags", actor=as_(team, "cleo"))
    with pytest.raises(InvalidRequest):
        team.create_project("   ", actor=as_(team, "ann"))
    made = make(team, project="SS27 handbags")
    loose = make(team, n=1)
    assert {d.project_id for d in made} == {p.id} and loose[0].project_id != p.id
    assert [d.id for d in team.history(project="SS27 handbags")] == [made[1].id, made[0].id]
    with pytest.raises(NotFound):
        team.history(project="AW99")


def test_history_searches_prompt_text_and_filters_kind_status_and_dates(team):
    bags = make(team, "A Cognac Tote")
    shoes = make(team, "black loafer", n=1)
    mesh = team.make_mesh(bags[0].id, actor=as_(team, "ann"))
    assert {d.id for d in team.history(text="cognac")} == {bags[0].id, bags[1].id, mesh.id}
    assert [d.id for d in team.history(text="LOAFER")] == [shoes[0].id]
    assert [d.id for d in team.history(kind="mesh")] == [mesh.id]
    team.shortlist(bags[1].id, actor=as_(team, "ann"))
    assert [d.id for d in team.history(status="shortlisted")] == [bags[1].id]
    today = datetime.utcnow().date()
    assert len(team.history(since=str(today), until=str(today))) == 4
    assert team.history(until=str(today - timedelta(days=1))) == []
    assert team.history(since=str(today + timedelta(days=1))) == []
    for bad in (dict(kind="video"), dict(status="maybe"), dict(since="23/11/2026"),
                dict(since=str(today), until=str(today - timedelta(days=3)))):
        with pytest.raises(InvalidRequest):
            team.history(**bad)


def test_lineage_tree_shows_parent_and_children(team):
    image = make(team, n=1)[0]
    first, second = team.make_mesh(image.id, actor=as_(team, "ann")), team.make_mesh(image.id, size_cm=40, actor=as_(team, "ann"))
    tree = team.lineage_tree(second.id)
    assert tree.design.id == image.id and [c.design.id for c in tree.children] == [first.id, second.id]
    text = team.lineage_text(second.id)
    assert text.splitlines()[0].startswith(f"#{image.id} image") and f"#{second.id} mesh" in text and "◀" in text
    settings = team.design_settings(image.id)
    assert settings["seed"] == image.seed and settings["steps"] == 2 and settings["prompt"] == image.prompt
    with pytest.raises(NotFound):
        team.lineage_tree(999)


def test_designer_shortlists_but_cannot_decide_and_the_director_decides(team):
    design = make(team, n=1)[0]
    assert team.shortlist(design.id, actor=as_(team, "ann"), note="strong silhouette").status == "shortlisted"
    assert team.shortlist(design.id, actor=as_(team, "ann")).status == "shortlisted"  # twice changes nothing
    forged = Actor("cleo", "creative_director", "account")  # not made by the access policy: no seal
    for who in (as_(team, "ann"), as_(team, "ada"), "", None, "stranger", "cleo", forged):
        with pytest.raises(Forbidden):
            team.decide(design.id, "approved", "ok", actor=who)
    assert team.store.design(design.id).status == "shortlisted"
    with pytest.raises(InvalidRequest, match="comment is required"):
        team.decide(design.id, "rejected", "  ", actor=as_(team, "cleo"))
    with pytest.raises(InvalidRequest, match="decision 'maybe'"):
        team.decide(design.id, "maybe", "", actor=as_(team, "cleo"))
    with pytest.raises(NotFound, match="design 999"):
        team.decide(999, "approved", "", actor=as_(team, "cleo"))
    made = team.decide(design.id, "approved", "Go to sample.", actor=as_(team, "cleo"))
    assert (made.actor, made.role, made.action, made.comment) == ("cleo", "creative_director", "approved", "Go to sample.")
    assert team.store.design(design.id).status == "approved"
    with pytest.raises(InvalidRequest, match="review is closed"):
        team.decide(design.id, "rejected", "changed my mind", actor=as_(team, "cleo"))
    log = team.decisions(design.id)
    assert [d.action for d in log] == ["approved", "shortlisted"] and log[1].comment == "strong silhouette"


def test_changes_requested_goes_back_to_the_designer_and_can_be_shortlisted_again(team):
    design = make(team, n=1)[0]
    with pytest.raises(InvalidRequest, match="is draft"):
        team.decide(design.id, "approved", "", actor=as_(team, "cleo"))  # not on the board yet
    team.shortlist(design.id, actor=as_(team, "ann"))
    team.decide(design.id, "changes_requested", "Softer handle, please.", actor=as_(team, "cleo"))
    card = team.board()[0]
    assert card.design.status == "changes_requested" and card.decisions[0].comment == "Softer handle, please."
    team.shortlist(design.id, actor=as_(team, "ann"), note="handle softened")
    assert [c.design.id for c in team.board(status="shortlisted")] == [design.id]


def test_board_cards_carry_lineage_mesh_and_brand_guard_flags(team):
    image = make(team, n=1)[0]
    mesh = team.make_mesh(image.id, actor=as_(team, "ann"))
    with team.store.sessions() as s:  # the brand guard writes flags into params
        row = s.get(type(image), image.id)
        row.params = dict(row.params, flags=["near-copy of archive #12"])
        s.commit()
    team.shortlist(image.id, actor=as_(team, "ann"))
    (card,) = team.board()
    assert card.lineage == [image.id] and card.mesh.id == mesh.id and card.flags == ["near-copy of archive #12"]
    assert card.shortlisted_by == "ann"


def test_solo_mode_without_accounts_lets_the_local_user_shortlist_but_not_decide(studio, loaded_models):
    studio.models.share(loaded_models)
    design = make(studio, n=1, actor="")[0]
    assert not studio.accounts_enabled()
    studio.shortlist(design.id, actor=None)
    with pytest.raises(Forbidden):
        studio.decide(design.id, "approved", "", actor=None)


def test_a_version_1_database_migrates_to_version_2_keeping_designs(settings):
    from sqlalchemy import create_engine, text

    from design_studio.store import Store
    from design_studio.store import migrations

    settings.data_dir.mkdir(parents=True)
    url = settings.resolved_database_url
    saved = list(migrations.MIGRATIONS)
    try:
        migrations.MIGRATIONS[:] = saved[:1]
        old = Store(url, settings.files_dir)
        assert old.schema_version == 1
        old.add_design(project_id=old.project("Inbox").id, kind="image", file="ab/x.png", sha256="x" * 64)
    finally:
        migrations.MIGRATIONS[:] = saved
    new = Store(url, settings.files_dir)
    assert new.schema_version == len(migrations.MIGRATIONS) and len(new.designs()) == 1 and new.designs()[0].status == "draft"
    with create_engine(url).connect() as conn:
        tables = {r[0] for r in conn.execute(text("select name from sqlite_master where type='table'"))}
    assert {"users", "shortlist_entries", "decisions"} <= tables


def test_cancel_stops_generation_within_one_step_and_saves_nothing(team):
    board = JobBoard()
    job = board.start("generate", actor="ann", owner="s1")
    steps = []

    def on_progress(fraction, message):
        steps.append(message)
        if len(steps) == 2:
            board.cancel(owner="s1")  # the Stop button, pressed during step 2

    with pytest.raises(Cancelled):
        board.run(job, team.generate_concepts, "a bag", n=2, steps=20, seed=1, actor=as_(team, "ann"),
                  on_progress=cancellable(on_progress))
    assert len(steps) == 2  # step 3 never reported: stopped within one step
    assert job.status == "cancelled" and team.store.designs() == []
    assert board.finish(job, "done") is False and job.status == "cancelled"  # status is set once


def test_job_board_records_done_and_failed_once_and_cancels_only_its_owner(team):
    board = JobBoard()
    mine, theirs = board.start("a", owner="s1"), board.start("b", owner="s2")
    assert [j.id for j in board.cancel(owner="s1")] == [mine.id]
    assert mine.cancel_requested and not theirs.cancel_requested
    assert board.run(theirs, lambda: 42) == 42 and theirs.status == "done"
    failing = board.start("c")
    with pytest.raises(InvalidRequest):
        board.run(failing, team.generate_concepts, "", n=1, actor=as_(team, "ann"))
    assert failing.status == "failed" and "prompt is empty" in failing.message
    assert PASSWORDS  # the team fixture's accounts exist


def test_a_turntable_named_in_params_is_shown_only_from_the_file_store(team):
    from design_studio.ui.review_tab import turntable_of

    image = make(team, n=1)[0]
    rel, _ = team.store.files.put(b"GIF89a-turntable", ".gif")
    for value, expected in ((rel, team.store.files.path(rel)), ("../studio.db", None), ("aa/missing.gif", None)):
        with team.store.sessions() as s:
            row = s.get(type(image), image.id)
            row.params = dict(row.params, turntable=value)
            s.commit()
        team.shortlist(image.id, actor=as_(team, "ann"))
        (card,) = team.board()
        found = turntable_of(team, card)
        assert found == (str(expected) if expected else None), value


def test_review_acts_enter_the_ledger_and_an_approval_opens_sampling(team):
    design = make(team, n=1)[0]
    team.shortlist(design.id, actor=as_(team, "ann"), note="strong silhouette")
    team.decide(design.id, "approved", "Go to sample.", actor=as_(team, "cleo"))
    with pytest.raises(InvalidRequest, match="review is closed"):
        team.decide(design.id, "rejected", "changed my mind", actor=as_(team, "cleo"))
    events = [(e.event, e.actor, e.role) for e in team.ledger.events(subject_type="design", subject_id=str(design.id))]
    assert events[-2:] == [("shortlisted", "ann", "designer"), ("approved", "cleo", "creative_director")]
    assert "rejected" not in [e for e, _, _ in events]  # the refused act left no trace
    sample = team.order_sample(design.id, "Atelier Rossi", "calf leather", 180, "EUR", actor=as_(team, "ann"))
    assert sample.design_id == design.id
    assert team.ledger.verify().ok
