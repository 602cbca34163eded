"""A batch run in this process: failing rows recorded while the rest is done, OOM retried smaller,
reruns redo nothing, a changed row is new work, a full disk stops cleanly."""
from __future__ import annotations

import json
from pathlib import Path

import trimesh
from PIL import Image

from design_studio.batch import manifest
from design_studio.batch.faults import Faults
from design_studio.store import Design
from pipelines.concept import read_png_metadata


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def base_row(prompt: str, seed: int, **extra) -> dict:
    return dict(prompt=prompt, seed=seed, n=1, steps=1, size="64x64", project="Batch test", **extra)


def all_designs(studio) -> list[Design]:
    with studio.store.sessions() as s:
        return list(s.query(Design).order_by(Design.id))


def assert_clean(folder: Path) -> None:
    """No temp files left anywhere, and every PNG opens completely."""
    assert not [p for p in folder.rglob("*") if p.name.startswith(".tmp-")]
    for png in folder.rglob("*.png"):
        with Image.open(png) as img:
            img.load()


def test_failing_rows_are_recorded_and_the_rest_is_done(studio, tmp_path):
    sketch = tmp_path / "sketch.png"
    Image.new("RGB", (64, 64), "white").save(sketch)
    job = write_jsonl(tmp_path / "job.jsonl", [
        base_row("cognac top-handle bag", 10, category="handbag", mesh="depth-relief"),  # line 1
        base_row("bag from a sketch", 11, sketch=str(sketch)),                            # line 2
        base_row("bag that never fits in memory", 12),                                    # line 3
        dict(base_row("four loafers", 20), n=4),                                          # line 4: OOM at 4, fine at 2
    ])
    out = tmp_path / "out"
    summary = studio.run_batch(job, out, faults=Faults("oom_line=3,oom_batch_above=2"))

    assert (summary.done_now, summary.images, summary.meshes) == (2, 5, 1)
    failed = {f["line"]: f["reason"] for f in summary.failed}
    assert failed[2].startswith("sketch is empty")
    assert "out of memory" in failed[3]
    states = manifest.read_records(out / "manifest.jsonl")
    assert sorted((r["line"], r["state"]) for r in states) == [(1, "done"), (2, "failed"), (3, "failed"), (4, "done")]
    assert not list(out.glob("manifest.rank*.jsonl"))  # shards merged away

    # The OOM row was made in two passes of 2 with the row's own seeds.
    loafers = next(r for r in states if r["line"] == 4)
    assert sorted(img["seed"] for img in loafers["images"]) == [20, 21, 22, 23]
    designs = all_designs(studio)
    assert len([d for d in designs if d.kind == "image"]) == 5 and len([d for d in designs if d.kind == "mesh"]) == 1
    assert {d.project_id for d in designs} == {studio.store.project("Batch test").id}
    assert all(d.params["batch_key"] in {r["key"] for r in states} for d in designs if d.kind == "image")

    # Readable copies carry the parameters; the mesh is a textured GLB; the contact sheet names failures.
    bag = out / next(r for r in states if r["line"] == 1)["images"][0]["file"]
    meta = read_png_metadata(bag)
    assert meta["seed"] == 10 and "handbag" in meta["prompt"] and meta["batch_line"] == 1
    assert bag.name.startswith("00001-cognac-top-handle-bag-seed10")
    mesh = trimesh.load(out / next(r for r in states if r["line"] == 1)["meshes"][0]["file"], force="mesh")
    assert len(mesh.faces) > 0
    sheet = (out / "contact-sheet.html").read_text()
    assert "sketch is empty" in sheet and bag.name in sheet
    assert_clean(out)
    assert_clean(studio.settings.files_dir)


def test_rerun_redoes_nothing_and_a_changed_row_is_new_work(studio, tmp_path):
    rows = [base_row("silk scarf", 1), base_row("gold cuff", 2), base_row("tank watch", 3)]
    job = write_jsonl(tmp_path / "job.jsonl", rows)
    out = tmp_path / "out"
    first = studio.run_batch(job, out)
    assert (first.done_now, first.done_before) == (3, 0)
    ids = [d.id for d in all_designs(studio)]

    again = studio.run_batch(job, out)
    assert (again.done_now, again.done_before, again.images) == (0, 3, 0)
    assert [d.id for d in all_designs(studio)] == ids

    rows[1]["seed"] = 99  # a changed row is new work; the others are untouched
    write_jsonl(job, rows)
    changed = studio.run_batch(job, out)
    assert (changed.done_now, changed.done_before) == (1, 2)
    assert len(all_designs(studio)) == 4
    assert len(manifest.read_records(out / "manifest.jsonl")) == 4  # one line per item ever made


def test_disk_full_stops_cleanly_and_a_rerun_finishes(studio, tmp_path):
    rows = [base_row(f"wallet {i}", 100 + i) for i in range(5)]
    job = write_jsonl(tmp_path / "job.jsonl", rows)
    out = tmp_path / "out"
    stopped = studio.run_batch(job, out, faults=Faults("enospc_after=2"))
    assert stopped.stopped.startswith("disk full") and stopped.done_now == 2 and stopped.not_run == 3
    states = manifest.read_records(out / "manifest.jsonl")
    assert sorted(r["state"] for r in states) == ["done", "done", "running"]
    # The interrupted item's designs were discarded: the store holds exactly the finished items.
    assert len(all_designs(studio)) == 2
    assert_clean(out)

    finished = studio.run_batch(job, out)
    assert (finished.done_now, finished.done_before, finished.stopped) == (3, 2, "")
    states = manifest.read_records(out / "manifest.jsonl")
    assert len(states) == 5 and {r["state"] for r in states} == {"done"}
    designs = all_designs(studio)
    assert sorted(d.params["batch_line"] for d in designs) == [1, 2, 3, 4, 5]
    assert len(list((out / "images").glob("*.png"))) == 5
    assert_clean(out)


def test_an_invalid_file_runs_nothing_unless_skip_invalid(studio, tmp_path):
    import pytest

    from design_studio.errors import InvalidRequest

    job = write_jsonl(tmp_path / "job.jsonl", [base_row("good bag", 1), dict(base_row("bad bag", 2), steps=0)])
    out = tmp_path / "out"
    with pytest.raises(InvalidRequest, match=r"line 2: column steps: 0 is out of range"):
        studio.run_batch(job, out)
    assert not out.exists() and all_designs(studio) == []
    summary = studio.run_batch(job, out, skip_invalid=True)
    assert summary.done_now == 1 and summary.invalid == ["line 2: column steps: 0 is out of range; "
                                                         "accepted: a whole number from 1 to 150"]


def test_torn_manifest_lines_are_skipped_and_merging_twice_changes_nothing(tmp_path):
    shard = manifest.shard_path(tmp_path, 1)
    with manifest.ShardWriter(shard, rank=1) as w:
        w.append({"key": "a", "state": "running", "line": 1})
        w.append({"key": "a", "state": "done", "line": 1})
    with open(shard, "ab") as fh:
        fh.write(b'{"key": "b", "state": "runn')  # a crash in the middle of a line
    with manifest.ShardWriter(shard, rank=1) as w:  # a restarted process appends after it
        w.append({"key": "b", "state": "failed", "line": 2, "reason": "x"})
    states = manifest.merge(tmp_path)
    assert {k: v["state"] for k, v in states.items()} == {"a": "done", "b": "failed"}
    assert not shard.exists()
    text = (tmp_path / "manifest.jsonl").read_text()
    assert manifest.merge(tmp_path) == states and (tmp_path / "manifest.jsonl").read_text() == text
