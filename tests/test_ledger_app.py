"""The ledger in the studio: samples and releases are ledger events, roles are enforced, the CLI reports and verifies."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from gov_helpers import cli_env, textured

from brand_guard.ledger import import_csv
from design_studio.cli import main
from design_studio.errors import InvalidRequest
from design_studio.access import Forbidden as RoleRefused

ROOT = Path(__file__).resolve().parents[1]


PASSWORDS = {"ana": "ana-designs-1", "chloe": "chloe-directs-1", "root": "root-admins-1"}
ROLES = {"ana": "designer", "chloe": "creative_director", "root": "admin"}


def who(studio, name):
    """The actor of a session signed in as ``name`` (accounts made on first use)."""
    if studio.store.user(name) is None:
        studio.add_user(name, ROLES[name], PASSWORDS[name])
    return studio.access.session(name)


def styles(studio, n, project="SS27 bags"):
    ana = who(studio, "ana")
    return [studio.generate_concepts(f"bag {i}", n=1, seed=i, project=project, actor=ana)[0] for i in range(n)]


def approve(studio, design):
    studio.shortlist(design.id, actor=who(studio, "ana"))
    studio.decide(design.id, "approved", "", actor=who(studio, "chloe"))


def test_samples_and_release_are_ledger_events_and_roles_hold(studio):
    a, b = styles(studio, 2)
    with pytest.raises(InvalidRequest, match="not approved"):
        studio.order_sample(a.id, "Atelier Rossi", "calf leather", "180", "EUR", actor=who(studio, "ana"))
    approve(studio, a)
    sample = studio.order_sample(a.id, "Atelier Rossi", "calf leather", "180.50", "eur", actor=who(studio, "ana"))
    assert (sample.cost, sample.currency, sample.status) == ("180.50", "EUR", "ordered")
    with pytest.raises(InvalidRequest, match="cost"):
        studio.order_sample(a.id, "Atelier Rossi", "calf", "-3", "EUR", actor=who(studio, "ana"))
    assert len(studio.samples(a.id)) == 1
    assert studio.receive_sample(design_id=a.id, actor=who(studio, "ana")).status == "received"
    second = studio.order_sample(a.id, "Atelier Rossi", "suede", "95", "EUR", actor=who(studio, "ana"))
    assert studio.reject_sample(second.id, actor=who(studio, "ana"), reason="colour off").status == "rejected"
    with pytest.raises(InvalidRequest, match="already rejected"):
        studio.receive_sample(second.id, actor=who(studio, "ana"))

    before = studio.ledger.count()
    with pytest.raises(RoleRefused, match="designer"):
        studio.release_to_production(a.id, "SS27-TOTE-001", actor=who(studio, "ana"))
    with pytest.raises(RoleRefused):
        studio.drop_style(b.id, actor=who(studio, "ana"))
    assert studio.ledger.count() == before  # nothing recorded by a refused act
    entry = studio.release_to_production(a.id, "SS27-TOTE-001", actor=who(studio, "chloe"))
    assert entry.event == "released_to_production" and entry.payload["sku"] == "SS27-TOTE-001"
    assert entry.payload["style_id"] == str(a.id) and entry.payload["collection"] == "SS27 bags"
    studio.drop_style(b.id, actor=who(studio, "chloe"), reason="too close to FW26")
    events = [e.event for e in studio.ledger.events()]
    assert events == ["design_created", "design_created", "shortlisted", "approved", "sample_ordered",
                      "sample_received", "sample_ordered", "sample_rejected", "released_to_production",
                      "style_dropped"]
    assert studio.ledger.verify().ok


def _days(start: str, end: str) -> float:
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() / 86400


def test_ratio_report_through_the_cli_matches_hand_computed_figures(studio, settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    studio.settings.season = "SS27"
    a, b, c = styles(studio, 3)
    approve(studio, a)
    approve(studio, b)
    for design, cost in ((a, "100"), (a, "120"), (b, "80")):
        studio.order_sample(design.id, "Atelier Rossi", "calf", cost, "EUR", actor=who(studio, "ana"))
    studio.release_to_production(a.id, "SS27-001", actor=who(studio, "chloe"))
    baselines = tmp_path / "baselines.csv"
    baselines.write_text("collection,season,samples_per_style,days_to_approval\nSS27 bags,,4,20\n")
    who(studio, "root")
    assert main(["ledger", "baseline", "import", str(baselines)]) == 2  # no login: refused
    monkeypatch.setenv("STUDIO_PASSWORD", PASSWORDS["ana"])
    assert main(["ledger", "baseline", "import", str(baselines), "--user", "ana"]) == 2  # a designer: refused
    assert main(["ledger", "baseline", "import", str(baselines), "--system"]) == 2  # system: refused
    assert studio.baselines() == []
    monkeypatch.setenv("STUDIO_PASSWORD", PASSWORDS["root"])
    assert main(["ledger", "baseline", "import", str(baselines), "--user", "root"]) == 0
    [baseline_event] = studio.ledger.events(event="baseline_set")
    assert (baseline_event.actor, baseline_event.role) == ("root", "admin")
    capsys.readouterr()

    assert main(["ledger", "report", "--collection", "SS27 bags", "--season", "SS27", "--format", "json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    created = {e.subject_id: e.created_at for e in studio.ledger.events(event="design_created")}
    approved = [e for e in studio.ledger.events(event="approved")]
    days = sorted(_days(created[e.subject_id], e.created_at) for e in approved)
    assert (row["styles_concepted"], row["styles_approved"], row["styles_sampled"], row["styles_released"]) == (3, 2, 2, 1)
    assert row["samples_ordered"] == 3 and row["sample_cost"] == {"EUR": "300"}
    assert row["samples_per_style_released"] == 3.0 and row["samples_per_style_approved"] == 1.5
    assert row["median_days_to_approval"] == pytest.approx(sum(days) / 2)
    assert row["samples_change"] == pytest.approx(-0.25) and row["samples_target"] == "in_band"  # 3 vs 4 per style
    assert row["season"] == "SS27"

    out = tmp_path / "report.html"
    assert main(["ledger", "report", "--collection", "SS27 bags", "--format", "html", "--out", str(out)]) == 0
    assert "<table>" in out.read_text() and "SS27 bags" in out.read_text()


def test_ledger_csv_export_round_trips(studio, settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    a, = styles(studio, 1)
    approve(studio, a)
    studio.order_sample(a.id, "Maison Duval", "silk twill", "42.10", "EUR", actor=who(studio, "ana"))
    target = tmp_path / "ledger.csv"
    assert main(["ledger", "export", str(target)]) == 0
    entries = import_csv(target)
    assert [e.to_dict() for e in entries] == [e.to_dict() for e in studio.ledger.events()]
    assert entries[-1].payload["cost"] == "42.10"


def test_ledger_verify_cli_detects_an_edited_row(studio, settings):
    a, b = styles(studio, 2)
    approve(studio, a)
    env = {**os.environ, **cli_env(settings)}
    cmd = [sys.executable, "-m", "design_studio.cli", "ledger", "verify"]
    ok = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "4 entries" in ok.stdout
    with sqlite3.connect(settings.data_dir / "studio.db") as db:  # someone rewrites who approved
        db.execute("UPDATE ledger_events SET actor = 'mallory' WHERE seq = 4")
    bad = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert "seq 4" in bad.stderr and "edited" in bad.stderr


def test_vault_cli_wrong_passphrase_is_a_clear_error(settings, monkeypatch, capsys, tmp_path):
    for key, value in cli_env(settings, STUDIO_VAULT_PASSPHRASE="house archive 1867").items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "archive"
    folder.mkdir()
    for seed in (1, 2):
        textured(seed, 96).save(folder / f"p{seed}.png")
    assert main(["vault", "add", str(folder), "--collection", "heritage"]) == 0
    assert "added 2" in capsys.readouterr().out
    assert main(["vault", "counts"]) == 0
    assert capsys.readouterr().out.strip() == "heritage\t2"
    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", "wrong guess")
    assert main(["vault", "list"]) == 2
    err = capsys.readouterr().err
    assert "wrong vault passphrase" in err and err.count("\n") == 1
    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", "house archive 1867")
    monkeypatch.setenv("STUDIO_VAULT_NEW_PASSPHRASE", "new archive 2026")
    assert main(["vault", "rotate-key"]) == 0
    assert main(["vault", "list"]) == 2  # the old passphrase no longer opens it
    monkeypatch.setenv("STUDIO_VAULT_PASSPHRASE", "new archive 2026")
    assert main(["vault", "log"]) == 0
    assert "rotate_key" in capsys.readouterr().out
