"""Who acted is always who signed in: attacks on the record through the API, the CLI and a crash.

Written as an attacker would try them (beside the route-security suite): a designer's API session
calling the release and sample endpoints, CLI acting commands without credentials, the ``system``
actor asking for decisions, a removed account's open session, batch runs and a creative director's
generations, and a process killed between a design's rows and its ledger events.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from gov_helpers import cli_env
from team_server import PASSWORDS, login, serve_team, team_settings

from design_studio.access import Actor, Forbidden
from design_studio.cli import main
from design_studio.errors import InvalidRequest

ROOT = Path(__file__).resolve().parents[1]


def client(url, name, password=None):
    from gradio_client import Client

    return Client(url, auth=(name, password or PASSWORDS[name]), verbose=False)


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir):
    settings = team_settings(tmp_path_factory.mktemp("trust") / "data", models_dir)
    with serve_team(settings) as (studio, demo, url):
        yield studio, url


def _approved_design(studio, prompt):
    ann, cleo = studio.access.session("ann"), studio.access.session("cleo")
    design = studio.import_image(_png(), name=f"{prompt}.png", actor=ann)
    studio.shortlist(design.id, actor=ann)
    studio.decide(design.id, "approved", "", actor=cleo)
    return design


def _png(colour=(120, 90, 60)) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return buf.getvalue()


# --------------------------------------------------------------------------- finding 1: the Ledger tab
def test_a_designer_api_session_cannot_release_or_forge_a_name_and_the_ledger_records_who_signed_in(app):
    studio, url = app
    design = _approved_design(studio, "tote")
    ann = client(url, "ann")
    before = studio.ledger.count()
    with pytest.raises(Exception, match="may not release"):
        ann.predict(design.id, "", "", "", "EUR", "SS27-TOTE-001", "", api_name="/release")
    # The old form carried a typed name and role; the endpoint no longer has those inputs.
    with pytest.raises(Exception):
        ann.predict(design.id, "cleo", "creative_director", "", "", "", "EUR", "SS27-TOTE-001", "",
                    api_name="/release")
    assert studio.ledger.count() == before
    assert not studio.ledger.events(event="released_to_production")

    ann.predict(design.id, "Atelier Rossi", "calf leather", "180", "EUR", "", "", api_name="/sample_order")
    ann.predict(design.id, "", "", "", "EUR", "", "arrived fine", api_name="/sample_receive")
    ordered, received = studio.ledger.events()[-2:]
    assert (ordered.event, ordered.actor, ordered.role) == ("sample_ordered", "ann", "designer")
    assert (received.event, received.actor, received.role) == ("sample_received", "ann", "designer")
    assert studio.samples(design.id)[-1].ordered_by == "ann"

    cleo = client(url, "cleo")
    cleo.predict(design.id, "", "", "", "EUR", "SS27-TOTE-001", "", api_name="/release")
    released = studio.ledger.events(event="released_to_production")[-1]
    assert (released.actor, released.role, released.payload["sku"]) == ("cleo", "creative_director", "SS27-TOTE-001")


def test_release_needs_an_approval_and_happens_once_and_samples_close_once(app):
    studio, _ = app
    ann, cleo = studio.access.session("ann"), studio.access.session("cleo")
    draft = studio.import_image(_png((10, 20, 30)), name="draft.png", actor=ann)
    with pytest.raises(InvalidRequest, match="not approved"):
        studio.release_to_production(draft.id, "SS27-X", actor=cleo)
    design = _approved_design(studio, "clutch")
    studio.release_to_production(design.id, "SS27-CL-01", actor=cleo)
    before = studio.ledger.count()
    with pytest.raises(InvalidRequest, match="released once"):
        studio.release_to_production(design.id, "SS27-CL-02", actor=cleo)
    with pytest.raises(InvalidRequest, match="already released"):
        studio.drop_style(design.id, actor=cleo)
    sample = studio.order_sample(design.id, "Atelier Rossi", "calf", "90", "EUR", actor=ann)
    studio.reject_sample(sample.id, actor=ann, reason="colour off")
    with pytest.raises(InvalidRequest, match="already rejected"):
        studio.receive_sample(sample.id, actor=ann)
    assert studio.ledger.count() == before + 2  # the order and the rejection, nothing else


def test_the_system_actor_takes_no_decision(app):
    studio, _ = app
    system = studio.access.system()
    design = _approved_design(studio, "scarf")
    fresh = studio.import_image(_png((200, 10, 10)), name="fresh.png", actor=system)  # system may create
    assert fresh.created_by == "system"
    assert studio.ledger.events(subject_id=str(fresh.id))[0].role == "system"
    studio.shortlist(fresh.id, actor=studio.access.session("ann"))
    before = studio.ledger.count()
    for act in (lambda: studio.decide(fresh.id, "approved", "", actor=system),
                lambda: studio.release_to_production(design.id, "SYS-1", actor=system),
                lambda: studio.drop_style(design.id, actor=system),
                lambda: studio.set_baseline("Inbox", "", 3, 10, actor=system),
                lambda: studio.shortlist_guard(fresh.id, system, "override by script")):
        with pytest.raises(Forbidden, match="'system'"):
            act()
    forged = Actor("cleo", "creative_director", "account")  # built by hand, not by the access policy
    with pytest.raises(Forbidden, match="not established"):
        studio.release_to_production(design.id, "FORGED-1", actor=forged)
    assert studio.ledger.count() == before


# --------------------------------------------------------------------------- finding 3: removed accounts
def test_a_removed_accounts_open_sessions_are_refused_at_their_next_call(app):
    studio, url = app
    studio.add_user("dora", "designer", "dora-designs-1")
    dora = client(url, "dora", "dora-designs-1")
    assert dora.predict(api_name="/whoami") == {"user": "dora", "role": "designer"}
    with httpx.Client(timeout=30) as browser:
        assert login(browser, url, "dora", "dora-designs-1").status_code == 200
        assert browser.get(url + "gradio_api/info").status_code == 200
        studio.remove_user("dora")
        count = len(studio.store.designs(limit=10_000))
        with pytest.raises(Exception, match="no longer exists"):
            dora.predict(api_name="/whoami")
        with pytest.raises(Exception):  # refused by the session check, or by then without a session at all
            dora.predict("a bag", "", 1, 1, 1, api_name="/generate_designs")
        assert len(studio.store.designs(limit=10_000)) == count
        # Its sign-in tokens are dropped after the refusal: the browser's cookie soon opens nothing.
        deadline = time.monotonic() + 20
        while browser.get(url + "gradio_api/info").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert browser.get(url + "gradio_api/info").status_code in (401, 403)
    with pytest.raises(Exception):
        client(url, "dora", "dora-designs-1")


def test_a_demoted_account_loses_the_decision_at_once(app):
    studio, _ = app
    studio.add_user("evan", "creative_director", "evan-directs-1")
    evan = studio.access.login("evan", "evan-directs-1")
    design = studio.import_image(_png((5, 5, 5)), name="d.png", actor=studio.access.session("ann"))
    studio.shortlist(design.id, actor=studio.access.session("ann"))
    studio.remove_user("evan")
    studio.add_user("evan", "designer", "evan-designs-1")  # same name, now a designer
    with pytest.raises(Forbidden, match="'evan' \\(designer\\) may not decide"):
        studio.decide(design.id, "approved", "", actor=evan)


# --------------------------------------------------------------------------- finding 4: batch and roles
def test_a_batch_from_the_batch_tab_records_the_signed_in_creative_director(app, tmp_path):
    from gradio_client import handle_file

    studio, url = app
    job = tmp_path / "cd-batch.jsonl"
    job.write_text("".join(json.dumps(dict(prompt=f"silk scarf {i}", seed=i, n=1, steps=1, size="64x64",
                                           project="CD batch")) + "\n" for i in range(2)))
    cleo = client(url, "cleo")
    cleo.predict(handle_file(str(job)), False, api_name="/batch_start")
    made = studio.history(project="CD batch")
    assert len(made) == 2 and {d.created_by for d in made} == {"cleo"}
    events = [studio.ledger.events(subject_type="design", subject_id=str(d.id), event="design_created")[0]
              for d in made]
    assert {(e.actor, e.role) for e in events} == {("cleo", "creative_director")}
    # and a generation through the API is recorded with the director's role, not 'designer'
    [single] = cleo.predict("a cognac belt", "", 1, 3, 1, api_name="/generate_designs")
    [event] = studio.ledger.events(subject_type="design", subject_id=str(single["id"]), event="design_created")
    assert (single["created_by"], event.actor, event.role) == ("cleo", "cleo", "creative_director")


# --------------------------------------------------------------------------- finding 2: the CLI
@pytest.mark.parametrize("command", [
    ["release", "{design}", "--sku", "CLI-1"],
    ["drop", "{design}", "--reason", "no"],
    ["sample", "order", "{design}", "--supplier", "Rossi", "--material", "calf", "--cost", "10"],
    ["ledger", "baseline", "add", "--collection", "Inbox", "--samples-per-style", "3", "--days-to-approval", "9"],
])
def test_cli_acting_commands_without_credentials_exit_2_and_record_nothing(command, studio, settings, monkeypatch,
                                                                           capsys):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    for key in ("STUDIO_USER", "STUDIO_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    studio.add_user("cleo", "creative_director", "cleo-directs-1")
    studio.add_user("ann", "designer", "ann-designs-1")
    design = _approved_design_solo(studio)
    argv = [part.format(design=design.id) for part in command]
    before = studio.ledger.count()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "log in with --user" in err
    with pytest.raises(SystemExit):  # the --actor / --role flags are gone
        main([*argv, "--actor", "cleo"])
    capsys.readouterr()
    assert main([*argv, "--user", "cleo"]) == 2  # a name without its password
    assert "no password" in capsys.readouterr().err
    monkeypatch.setenv("STUDIO_PASSWORD", "not-cleos-password")
    assert main([*argv, "--user", "cleo"]) == 2
    assert "refused" in capsys.readouterr().err
    assert studio.ledger.count() == before
    if command[0] != "sample":  # ordering a sample is open to every role; these are not
        assert main([*argv, "--system"]) == 2
        assert "'system'" in capsys.readouterr().err
        monkeypatch.setenv("STUDIO_PASSWORD", "ann-designs-1")
        assert main([*argv, "--user", "ann"]) == 2
        assert "'ann' (designer)" in capsys.readouterr().err
        assert studio.ledger.count() == before
    monkeypatch.setenv("STUDIO_PASSWORD", "cleo-directs-1")
    assert main([*argv, "--user", "cleo"]) == 0
    last = studio.ledger.events()[-1]
    assert (last.actor, last.role) == ("cleo", "creative_director")


def _approved_design_solo(studio):
    ann, cleo = studio.access.session("ann"), studio.access.session("cleo")
    design = studio.import_image(_png(), name="cli.png", actor=ann)
    studio.shortlist(design.id, actor=ann)
    studio.decide(design.id, "approved", "", actor=cleo)
    return design


# --------------------------------------------------------------------------- finding 8: all or nothing
KILLED_WRITER = textwrap.dedent("""
    import os, signal, sys
    from PIL import Image
    import brand_guard.ledger as ledger
    from design_studio.services import Studio
    from design_studio.services.designs import NewDesign
    from design_studio.settings import Settings

    data, models, keys = sys.argv[1:4]
    studio = Studio(Settings(data_dir=data, models_dir=models, key_dir=keys, profile="tiny", device="cpu"))
    insert = ledger.Ledger._insert

    def kill_before_the_event(self, conn, state, event, *rest):
        if event == "design_created":  # the rows are written in this transaction; the events are next
            os.kill(os.getpid(), signal.SIGKILL)
        return insert(self, conn, state, event, *rest)

    ledger.Ledger._insert = kill_before_the_event
    project = studio.store.project("Crash")
    studio.designs.create([NewDesign(kind="image", record_kind="concept", project_id=project.id,
                                     content=Image.new("RGB", (48, 48), (i * 30, 80, 90)), params={"i": i})
                           for i in range(8)], None)
    print("not killed")
""")


def test_a_writer_killed_between_rows_and_events_leaves_nothing_visible_and_is_swept(settings, models_dir):
    from brand_guard.provenance import manifest_path

    from design_studio.services import Studio

    studio = Studio(settings)
    kept = studio.import_image(_png(), name="kept.png")  # solo mode: no accounts
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(settings.data_dir), str(models_dir),
                           str(settings.key_dir)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    journals = list((settings.data_dir / "pending").glob("*.json"))
    assert len(journals) == 1
    orphans = [studio.store.files.root / e["file"] for e in json.loads(journals[0].read_text())["files"]]
    assert len(orphans) == 8 and all(p.is_file() and manifest_path(p).is_file() for p in orphans)

    assert [d.id for d in studio.store.designs(limit=100)] == [kept.id]  # no row without its event
    check = studio.verify_ledger()
    assert check.ok and check.problems == []

    Studio(settings)  # start-up sweeps what the dead writer left
    assert not any(p.exists() or manifest_path(p).exists() for p in orphans)
    assert not list((settings.data_dir / "pending").glob("*.json"))
    assert studio.store.file_path(kept).is_file()


def test_ledger_verify_names_a_design_without_its_event_or_manifest_and_it_cannot_go_forward(studio, settings,
                                                                                            monkeypatch, capsys):
    from brand_guard.provenance import manifest_path

    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    good = studio.import_image(_png(), name="good.png")
    assert main(["ledger", "verify"]) == 0
    assert "every design has its design_created event" in capsys.readouterr().out
    # A row written around the design writer (the old two-step path, or a hand edit of the database).
    rel, digest = studio.store.files.put(_png((1, 2, 3)), ".png")
    stray = studio.store.add_design(project_id=good.project_id, kind="image", file=rel, sha256=digest)
    manifest_path(studio.store.file_path(good)).unlink()
    assert main(["ledger", "verify"]) == 1
    err = capsys.readouterr().err
    assert f"design {stray.id}: no design_created event" in err
    assert f"design {good.id}: file {good.file} has no signed manifest" in err
    with pytest.raises(InvalidRequest, match="no design_created event"):
        studio.shortlist(stray.id, actor=None)


def test_zip_exports_carry_a_signed_provenance(studio):
    import io
    import zipfile

    from brand_guard.provenance import verify_signature

    image = studio.import_image(_png((140, 100, 70)), name="bag.png")
    mesh = studio.make_mesh(image.id, previews=False)
    [(name, data)] = studio.export_mesh(mesh.id, "zip").items()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        provenance, signature = zf.read("provenance.json"), zf.read("provenance.sig").decode()
    assert json.loads(provenance)["design"] == mesh.id
    assert verify_signature(studio.keys.public_key_b64, signature, provenance)
    assert not verify_signature(studio.keys.public_key_b64, signature, provenance.replace(b"design", b"desigm"))


# --------------------------------------------------------------------------- structure
def test_studio_only_wires_plain_services_and_no_service_reaches_into_another():
    import ast

    from design_studio.services.studio import FORWARDED, Studio

    assert Studio.__bases__ == (object,)  # no mixins
    own = {name for name, value in vars(Studio).items() if callable(value) and not name.startswith("__")}
    forwarded = {spec.partition(":")[0] for names in FORWARDED.values() for spec in names}
    assert own == forwarded  # every method is a declared forward to a service: no logic of its own
    offenders = []
    for path in sorted((ROOT / "design_studio").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            # self.<collaborator>._private / studio._private: reaching into another object's internals
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                if isinstance(base, ast.Attribute) and isinstance(base.value, ast.Name) and base.value.id == "self":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} self.{base.attr}.{node.attr}")
                elif isinstance(base, ast.Name) and base.id == "studio":
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} studio.{node.attr}")
    assert offenders == []
