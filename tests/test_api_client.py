"""The same team flow through the API with ``gradio_client`` (signed in), plus the GPU queue:
CPU calls are not blocked behind a generation, a full queue says the studio is busy, and cancel
stops a running generation."""
from __future__ import annotations

import time

import pytest
from team_server import PASSWORDS, serve_team, team_settings

MAX_QUEUE = 2


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir):
    settings = team_settings(tmp_path_factory.mktemp("api") / "data", models_dir)
    with serve_team(settings, max_queue=MAX_QUEUE) as (studio, demo, url):
        app.demo = demo
        yield studio, url


def client(url, name):
    from gradio_client import Client

    return Client(url, auth=(name, PASSWORDS[name]), verbose=False)


def test_wrong_password_is_refused(app):
    from gradio_client import Client

    _, url = app
    with pytest.raises(Exception, match="(?i)credentials|401|login"):
        Client(url, auth=("ann", "not-her-password"), verbose=False)
    with pytest.raises(Exception):
        Client(url, verbose=False)  # no sign-in at all


def test_designer_and_director_flow_through_the_api(app):
    studio, url = app
    ann, cleo = client(url, "ann"), client(url, "cleo")
    assert ann.predict(api_name="/whoami") == {"user": "ann", "role": "designer"}
    assert ann.predict("SS27 handbags", "structured, cognac", api_name="/create_project")["name"] == "SS27 handbags"
    made = ann.predict("a cognac top-handle bag", "SS27 handbags", 2, 11, 2, api_name="/generate_designs")
    assert [d["seed"] for d in made] == [11, 12] and {d["created_by"] for d in made} == {"ann"}
    found = ann.predict("SS27 handbags", "COGNAC", "image", "", "", "", api_name="/list_designs")
    assert sorted(d["id"] for d in found) == sorted(d["id"] for d in made)
    mesh = ann.predict(made[0]["id"], 25.0, api_name="/mesh_design")
    assert mesh["kind"] == "mesh" and mesh["parent_id"] == made[0]["id"]
    assert ann.predict(made[0]["id"], "best proportions", api_name="/shortlist")["status"] == "shortlisted"
    ann.predict(made[1]["id"], "", api_name="/shortlist")

    with pytest.raises(Exception, match="may not decide"):
        ann.predict(made[0]["id"], "approved", "I like mine", api_name="/decide")
    assert studio.store.design(made[0]["id"]).status == "shortlisted"

    board = cleo.predict("SS27 handbags", "shortlisted", api_name="/board")
    assert {c["id"] for c in board} == {made[0]["id"], made[1]["id"]}
    card = next(c for c in board if c["id"] == made[0]["id"])
    assert card["mesh_id"] == mesh["id"] and card["lineage"] == [made[0]["id"]]
    decision = cleo.predict(made[0]["id"], "approved", "Go to sample in cognac.", api_name="/decide")
    assert decision["actor"] == "cleo" and decision["role"] == "creative_director"
    cleo.predict(made[1]["id"], "changes_requested", "Lower the handle.", api_name="/decide")

    seen = ann.predict(made[0]["id"], api_name="/design")  # the designer sees the decision
    assert seen["status"] == "approved" and seen["decisions"][0]["comment"] == "Go to sample in cognac."
    assert "approved" in seen["lineage"]


def test_bad_input_through_the_api(app):
    _, url = app
    ann = client(url, "ann")
    with pytest.raises(Exception, match="design 424242 does not exist"):
        ann.predict(424242, api_name="/design")
    with pytest.raises(Exception, match="design 424242 does not exist"):
        ann.predict(424242, "", api_name="/shortlist")
    with pytest.raises(Exception, match="prompt is empty"):
        ann.predict("", "", 1, -1, 2, api_name="/generate_designs")
    with pytest.raises(Exception, match="not a date"):
        ann.predict("", "", "", "", "yesterday", "", api_name="/list_designs")
    # The page's own admin and review events check roles in the service too
    with pytest.raises(Exception, match="may not manage users"):
        ann.predict("eve", "admin", "eve-sneaks-in", api_name="/add_user")
    with pytest.raises(Exception, match="may not decide|not in the list of choices"):
        ann.predict(1, "approved", "", api_name="/decide_ui")
    studio, _ = app
    assert studio.store.user("eve") is None


def wait_for(predicate, timeout=60.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_cpu_calls_pass_a_running_generation_a_full_queue_is_busy_and_cancel_stops_it(app):
    studio, url = app
    ann, other = client(url, "ann"), client(url, "cleo")
    before = len(studio.store.designs())
    long_run = ann.submit("a long study of a handbag", "", 4, 1, 150, api_name="/generate_designs")
    assert wait_for(lambda: any(j.status == "running" and "step" in j.progress for j in studio.jobs.jobs()))
    # 1. CPU work (history, review) answers while the GPU is busy
    listed = other.predict("", "", "", "", "", "", api_name="/list_designs")
    assert isinstance(listed, list)
    running = [j for j in studio.jobs.jobs() if j.status == "running"]
    assert running and not long_run.done()
    # 2. The queue holds MAX_QUEUE waiting GPU jobs; one more is refused with a clear message
    waiting = [other.submit("a quick bag", "", 1, 2, 1, api_name="/generate_designs") for _ in range(MAX_QUEUE)]
    assert wait_for(lambda: len(studio_queue(app)) == MAX_QUEUE, timeout=20)
    refused = other.submit("one too many", "", 1, 3, 1, api_name="/generate_designs")
    with pytest.raises(Exception, match="(?i)queue is full|busy"):  # gradio_client words it itself
        refused.result(timeout=30)
    raw = join_raw(url, "generate_designs", ["raw too many", "", 1, 4, 1])
    assert raw.status_code == 503 and "studio is busy" in raw.json()["detail"]  # what we say on the wire
    # 3. Cancel stops the running generation at its next step; its status is set once
    assert ann.predict(api_name="/cancel") == 1
    with pytest.raises(Exception, match="stopped"):
        long_run.result(timeout=60)
    job = running[0]
    assert job.status == "cancelled" and studio.jobs.finish(job, "done") is False
    steps_done = int(job.progress.split("step ")[1].split(" ")[0])
    assert steps_done < 150
    for w in waiting:
        assert len(w.result(timeout=120)) == 1
    assert len(studio.store.designs()) == before + MAX_QUEUE  # nothing from the cancelled run
    kinds = [(j["kind"], j["status"]) for j in ann.predict(api_name="/jobs")]
    assert ("generate_designs", "cancelled") in kinds


def studio_queue(app):
    q = app_demo()._queue.event_queue_per_concurrency_id.get("gpu")
    return list(q.queue) if q else []


def app_demo():
    return app.demo


def join_raw(url, api_name, data):
    """Join the queue with plain HTTP, as a script without gradio_client would."""
    import httpx
    from team_server import login

    fn_index = next(i for i, fn in app_demo().fns.items() if fn.api_name == api_name)
    with httpx.Client(timeout=30) as c:
        assert login(c, url, "ada").status_code == 200
        return c.post(url + "gradio_api/queue/join", json={
            "data": data, "fn_index": fn_index, "session_hash": "rawclient1", "event_data": None, "trigger_id": None})


def test_trace_a_cropped_copy_through_the_api(app, tmp_path):
    from gradio_client import handle_file
    from PIL import Image

    studio, url = app
    from brand_guard_images import textured_image

    textured_image(4, 512).save(tmp_path / "upload.png")  # an upload is stamped like a generated concept
    design = studio.import_image(str(tmp_path / "upload.png"), name="tote.png", actor=studio.access.session("ann"))
    with Image.open(studio.store.file_path(design)) as im:
        im.convert("RGB").crop((40, 30, 470, 480)).save(tmp_path / "found-online.jpg", quality=70)
    card = client(url, "cleo").predict(handle_file(str(tmp_path / "found-online.jpg")), api_name="/trace")
    assert f"Design #{design.id}" in card and "Made by** ann" in card and "the signed record verifies" in card
    Image.new("RGB", (300, 300), "white").save(tmp_path / "blank.png")
    card = client(url, "cleo").predict(handle_file(str(tmp_path / "blank.png")), api_name="/trace")
    assert "No mark found" in card
