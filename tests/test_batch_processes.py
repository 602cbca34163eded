"""Batch runs as real processes: SIGKILL mid-item then rerun, and two processes under ``accelerate launch``."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from design_studio.batch import manifest
from design_studio.services import Studio
from design_studio.store import Design

ROOT = Path(__file__).resolve().parents[1]


def job_file(path: Path, count: int, **extra) -> Path:
    rows = [dict(prompt=f"leather belt number {i}", seed=500 + i, n=1, steps=1, size="64x64", project="Night run")
            for i in range(count)]
    for line, fields in extra.items():
        rows[int(line.split("_")[1]) - 1].update(fields)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def env_for(settings, **more) -> dict:
    return dict(os.environ, STUDIO_DATA_DIR=str(settings.data_dir), STUDIO_MODELS_DIR=str(settings.models_dir),
                STUDIO_DEVICE="cpu", STUDIO_PROFILE="tiny", **more)


def designs_of(settings) -> list[Design]:
    studio = Studio(settings)
    with studio.store.sessions() as s:
        return list(s.query(Design).order_by(Design.id))


def assert_each_item_once(out: Path, settings, count: int) -> list[dict]:
    records = manifest.read_records(out / "manifest.jsonl")
    assert len(records) == count and len({r["key"] for r in records}) == count
    images = [d for d in designs_of(settings) if d.kind == "image"]
    per_key = Counter(d.params["batch_key"] for d in images)
    assert set(per_key) <= {r["key"] for r in records} and set(per_key.values()) == {1}
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    assert not [p for p in settings.files_dir.rglob("*") if p.name.startswith(".tmp-")]
    for png in out.rglob("*.png"):
        with Image.open(png) as img:
            img.load()
    return records


@pytest.mark.slow
def test_kill_minus_nine_mid_item_then_rerun_makes_each_item_once(settings, tmp_path):
    job = job_file(tmp_path / "night.jsonl", 5)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "design_studio.cli", "batch", "run", str(job), "--out", str(out), "--quiet"]
    # The third item stops after its designs are stored and before it is marked done: the worst moment.
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env_for(settings, STUDIO_BATCH_FAULTS="hang_after_designs=3"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while not (out / ".fault-hang").exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() < deadline, "the run never reached the third item"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    shard = manifest.read_records(manifest.shard_path(out, 0))
    assert [r["state"] for r in shard] == ["running", "done", "running", "done", "running"]
    assert len(designs_of(settings)) == 3  # two finished items and the killed one's orphan

    rerun = subprocess.run(cmd, cwd=ROOT, env=env_for(settings), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "3 done now, 2 done before, 0 failed" in rerun.stdout
    records = assert_each_item_once(out, settings, 5)
    assert {r["state"] for r in records} == {"done"}
    assert len(designs_of(settings)) == 5
    assert len(list((out / "images").glob("*.png"))) == 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_under_accelerate_share_the_rows(settings, tmp_path):
    sketch = tmp_path / "sketch.png"
    Image.new("RGB", (64, 64), "white").save(sketch)
    job = job_file(tmp_path / "night.jsonl", 6, line_4={"sketch": str(sketch)})
    out = tmp_path / "out"
    Studio(settings)  # the database exists before the processes start, as on a studio machine
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
           "-m", "design_studio.batch", "run", str(job), "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env_for(settings), capture_output=True, text=True, timeout=300)
    # Exit 1: a row failed (its sketch is blank); the others are done.
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "5 done now, 0 done before, 1 failed" in proc.stdout and "on 2 process(es)" in proc.stdout
    assert "failed line 4: sketch is empty" in proc.stdout
    records = assert_each_item_once(out, settings, 6)
    assert {r["rank"] for r in records} == {0, 1}  # both processes did work
    assert not list(out.glob("manifest.rank*.jsonl"))
    assert len([d for d in designs_of(settings) if d.kind == "image"]) == 5
