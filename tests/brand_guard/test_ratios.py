"""Ratios against a hand-computed fixture season (numbers below worked out by hand, not by the code)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from sqlalchemy import create_engine

from brand_guard.errors import RatiosError
from brand_guard.ledger import Ledger, create_tables
from brand_guard.provenance import StudioKeys
from brand_guard.ratios import (
    Baseline, band_status, compute, funnel, in_target_band, load_baselines_csv, reduction_vs_baseline, report,
)


def ev(seq, event, style, day, collection="AW27", season="AW27", **extra):
    return {
        "seq": seq, "event": event, "subject_type": "design", "subject_id": f"{style}-d",
        "payload": {"style_id": style, "collection": collection, "season": season, **extra},
        "created_at": f"2027-01-{1 + day:02d}T09:00:00+00:00",
    }


# Style A: created day 0, shortlisted 1, approved 4, two samples (EUR 100 + 150), released day 12.
# Style B: created day 1 (and a derived design day 3), approved day 11, one sample USD 80, released day 21.
# Style C: created day 2, shortlisted 3, changes requested 4, dropped day 6: no approval, no sample.
# Style D: another collection (SS27), created only.
SEASON = [
    ev(1, "design_created", "A", 0),
    ev(2, "design_created", "B", 1),
    ev(3, "shortlisted", "A", 1),
    ev(4, "design_created", "C", 2),
    ev(5, "design_created", "B", 3),
    ev(6, "shortlisted", "C", 3),
    ev(7, "approved", "A", 4),
    ev(8, "changes_requested", "C", 4),
    ev(9, "sample_ordered", "A", 5, supplier="Mill", material="wool", cost="100", currency="EUR"),
    ev(10, "style_dropped", "C", 6),
    ev(11, "sample_ordered", "A", 8, supplier="Mill", material="wool", cost="150", currency="EUR"),
    ev(12, "approved", "B", 11),
    ev(13, "released_to_production", "A", 12, sku="SKU-A"),
    ev(14, "sample_ordered", "B", 12, supplier="Tannery", material="leather", cost="80", currency="USD"),
    ev(15, "released_to_production", "B", 21, sku="SKU-B"),
    ev(16, "design_created", "D", 2, collection="SS27", season="SS27"),
]


def test_fixture_season_exact():
    [aw, ss] = compute(SEASON)
    assert (aw.collection, aw.season) == ("AW27", "AW27")
    assert (aw.styles_concepted, aw.styles_shortlisted, aw.styles_approved, aw.styles_sampled, aw.styles_released) == (3, 2, 2, 2, 2)
    assert aw.samples_ordered == 3
    assert aw.samples_per_style_released == 1.5
    assert aw.samples_per_style_approved == 1.5
    assert aw.sample_cost == {"EUR": Decimal("250"), "USD": Decimal("80")}
    assert aw.days_to_approval == [4.0, 10.0]
    assert aw.median_days_to_approval == 7.0
    assert aw.p90_days_to_approval == pytest.approx(9.4)
    assert aw.days_to_release == [12.0, 20.0]
    assert aw.median_days_to_release == 16.0
    assert aw.p90_days_to_release == pytest.approx(19.2)
    assert (ss.collection, ss.styles_concepted, ss.samples_ordered, ss.samples_per_style_released) == ("SS27", 1, 0, None)


def test_funnel():
    assert funnel(SEASON, collection="AW27") == {"concepted": 3, "shortlisted": 2, "approved": 2, "sampled": 2, "released": 2}
    assert funnel(SEASON) == {"concepted": 4, "shortlisted": 2, "approved": 2, "sampled": 2, "released": 2}


def test_reduction_and_bands():
    assert reduction_vs_baseline(1.5, 2.0) == -0.25
    assert in_target_band(-0.25) and in_target_band(-0.20) and in_target_band(-0.30)
    assert band_status(-0.10, (-0.30, -0.20)) == "short"
    assert band_status(-0.40, (-0.30, -0.20)) == "beyond"
    assert band_status(-0.15, (-0.30, -0.15)) == "in_band"
    assert band_status(None, (-0.30, -0.15)) == "no_data"
    assert reduction_vs_baseline(None, 2.0) is None


def test_report_formats_with_baseline():
    baselines = [Baseline("AW27", "AW27", 2.0, 10.0)]
    rows = json.loads(report(SEASON, baselines, collection="AW27", format="json"))
    assert len(rows) == 1
    row = rows[0]
    assert row["samples_change"] == -0.25 and row["samples_target"] == "in_band"
    assert row["days_to_approval_change"] == pytest.approx(-0.3) and row["days_to_approval_target"] == "in_band"
    assert row["sample_cost"] == {"EUR": "250", "USD": "80"}
    csv_text = report(SEASON, baselines, format="csv")
    assert csv_text.splitlines()[0].startswith("collection,season,styles_concepted")
    assert csv_text.count("\n") == 3  # header + AW27 + SS27
    html_text = report(SEASON, baselines, collection="AW27", format="html")
    assert html_text.startswith("<!doctype html>") and "<td>1.5</td>" in html_text and "in_band" in html_text
    with pytest.raises(RatiosError, match="pdf"):
        report(SEASON, format="pdf")


def test_load_baselines_csv_and_line_errors(tmp_path):
    path = tmp_path / "baselines.csv"
    path.write_text("collection,season,samples_per_style,days_to_approval\nAW27,AW27,2.0,10\nSS27,,3,21.5\n")
    assert load_baselines_csv(path) == [Baseline("AW27", "AW27", 2.0, 10.0), Baseline("SS27", "", 3.0, 21.5)]
    bad = "collection,season,samples_per_style,days_to_approval\nAW27,AW27,2.0,10\nSS27,,many,21\n"
    with pytest.raises(RatiosError, match=r"line 3: samples_per_style 'many'"):
        load_baselines_csv(io.StringIO(bad))
    with pytest.raises(RatiosError, match=r"line 2: days_to_approval '-4'"):
        load_baselines_csv(io.StringIO("collection,season,samples_per_style,days_to_approval\nAW27,,2,-4\n"))
    with pytest.raises(RatiosError, match="header"):
        load_baselines_csv(io.StringIO("name,ratio\nAW27,2\n"))


def test_works_on_ledger_entries(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    create_tables(engine)
    ledger = Ledger(engine, StudioKeys.generate(), tmp_path / "head.json")
    p = {"style_id": "A", "collection": "AW27", "season": "AW27"}
    ledger.append("design_created", "ann", "designer", "design", "A", p)
    ledger.append("approved", "cd", "creative_director", "design", "A", p)
    ledger.append("sample_ordered", "ann", "designer", "sample", "s1", p | {"supplier": "M", "material": "silk", "cost": 10, "currency": "EUR"})
    ledger.append("released_to_production", "cd", "creative_director", "style", "A", p | {"sku": "SKU-1"})
    [r] = compute(ledger.events())
    assert (r.styles_approved, r.styles_released, r.samples_per_style_released) == (1, 1, 1.0)
    assert 0 <= r.median_days_to_approval < 0.01
