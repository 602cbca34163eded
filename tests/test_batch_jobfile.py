"""Job files: every bad row is named with its line number and reason before anything runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from design_studio.batch.jobfile import JobLimits, load_job

ROOT = Path(__file__).resolve().parents[1]
LIMITS = JobLimits(max_steps=50, max_images=8, default_n=2, default_steps=2, default_width=64, default_height=64)


def write_bad_csv(folder: Path) -> Path:
    Image.new("RGB", (32, 32), "white").save(folder / "sketch.png")
    (folder / "notes.png").write_text("not an image")
    rows = [
        "prompt,negative_prompt,sketch,category,n,seed,steps,size,adapters,mesh,project",
        "good bag,,,handbag,2,1,2,64x64,,,P",                     # line 2 ok
        ",,,,2,1,2,64x64,,,P",                                    # line 3 empty prompt
        "bag,,,,0,1,2,64x64,,,P",                                 # line 4 n out of range
        "bag,,,,2,1,abc,64x64,,,P",                               # line 5 steps not a number
        "bag,,,,2,1,2,100x64,,,P",                                # line 6 width not multiple of 8
        "bag,,missing.png,,2,1,2,64x64,,,P",                      # line 7 sketch missing
        "bag,,notes.png,,2,1,2,64x64,,,P",                        # line 8 sketch not an image
        '"a multi-line',                                          # line 9-10: one row over two lines
        'prompt is fine",,sketch.png,,2,1,2,64x64,,,P',
        "bag,,,sofa,2,1,2,64x64,,shap-x,P",                       # line 11 category and mesh
        "bag,,,,2,1,2,64x64,lora one:3,,P",                       # line 12 adapter name and weight
        "good bag,,,handbag,2,1,2,64x64,,,P",                     # line 13 repeats line 2
        "bag,,,,2,-5,2,64x64,,,P",                                # line 14 seed negative
    ]
    path = folder / "season.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_every_bad_row_is_listed_with_its_line_and_reason(tmp_path):
    job = load_job(write_bad_csv(tmp_path), LIMITS)
    reasons = {p.line: p.reason for p in job.problems}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 11, 12, 13, 14]
    assert "column prompt is empty" in reasons[3]
    assert "column n: '0' is out of range; accepted: a whole number from 1 to 8" in reasons[4]
    assert "column steps: 'abc' is not a number" in reasons[5]
    assert "column width: '100' is not a multiple of 8" in reasons[6] and "try 96" in reasons[6]
    assert "column sketch" in reasons[7] and "no such file" in reasons[7]
    assert "column sketch" in reasons[8] and "not a readable image" in reasons[8]
    assert "column category: 'sofa'" in reasons[11] and "handbag" in reasons[11]
    assert "column mesh: 'shap-x'" in reasons[11] and "depth-relief" in reasons[11]
    assert "column adapters" in reasons[12]
    assert "repeats line 2" in reasons[13]
    assert "column seed: '-5' is out of range" in reasons[14]
    # The good rows, with the multi-line prompt starting on line 9.
    assert [r.line for r in job.rows] == [2, 9]
    assert job.rows[1].prompt == "a multi-line\nprompt is fine"
    assert job.rows[1].sketch == str((tmp_path / "sketch.png").resolve()) and job.rows[1].sketch_sha256


def test_jsonl_defaults_derived_seed_and_unknown_columns(tmp_path):
    path = tmp_path / "capsule.jsonl"
    lines = [
        {"prompt": "raffia tote", "size": "64x64"},
        {"prompt": "raffia tote", "size": "64x64", "seed": 7, "adapters": [{"name": "house-style", "weight": 0.8}]},
        "not json",
        {"prompt": "tote", "colour": "red"},
        [1, 2],
    ]
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    job = load_job(path, LIMITS)
    assert [str(p).split(":")[0] for p in job.problems] == ["line 3", "line 4", "line 5"]
    assert "not valid JSON" in job.problems[0].reason
    assert "unknown column 'colour'" in job.problems[1].reason and "accepted columns" in job.problems[1].reason
    first, second = job.rows
    assert (first.n, first.steps, first.width, first.project) == (2, 2, 64, "Inbox")
    assert first.seed_derived and 0 <= first.seed < 2**32
    assert load_job(path, LIMITS).rows[0].seed == first.seed  # the same on every read: resumable
    assert second.seed == 7 and second.adapters == [("house-style", 0.8)]


def test_unreadable_files_raise(tmp_path):
    with pytest.raises(ValueError, match="must end in"):
        (tmp_path / "rows.txt").write_text("prompt\nbag\n")
        load_job(tmp_path / "rows.txt", LIMITS)
    with pytest.raises(ValueError, match="does not exist"):
        load_job(tmp_path / "nope.csv", LIMITS)
    (tmp_path / "empty.csv").write_text("")
    assert "no rows" in load_job(tmp_path / "empty.csv", LIMITS).problems[0].reason


def test_the_shipped_examples_are_valid():
    for name in ("ss27-season.csv", "resort-capsule.jsonl"):
        job = load_job(ROOT / "assets" / "examples" / name, LIMITS)
        assert job.problems == [] and len(job.rows) >= 4


def test_cli_validate_exits_non_zero_naming_each_bad_row(tmp_path):
    path = write_bad_csv(tmp_path)
    env = dict(os.environ, STUDIO_DATA_DIR=str(tmp_path / "data"), STUDIO_MAX_IMAGES="8")
    proc = subprocess.run([sys.executable, "-m", "design_studio.cli", "batch", "validate", str(path)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert proc.returncode == 2
    bad = [ln for ln in proc.stderr.splitlines() if ln.startswith("line ")]
    assert [ln.split(":")[0] for ln in bad] == [f"line {n}" for n in (3, 4, 5, 6, 7, 8, 11, 12, 13, 14)]
    assert "12 rows, 2 valid, 10 bad" in proc.stdout
    assert not (tmp_path / "data" / "files").exists() or not any((tmp_path / "data" / "files").rglob("*.png"))
