"""A real full disk: the output folder on a tiny tmpfs. The run stops cleanly, nothing is corrupted,
and after space is freed the same command finishes with every item once."""
from __future__ import annotations

import json
import os
import subprocess
from collections import Counter

import pytest
from PIL import Image

from design_studio.batch import manifest
from design_studio.store import Design


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mount)],
                                          capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_real_enospc_stops_cleanly_then_resumes(studio, tmp_path, tiny_disk):
    rows = [dict(prompt=f"cashmere scarf {i}", seed=40 + i, n=1, steps=1, size="64x64", project="Disk")
            for i in range(6)]
    job = tmp_path / "job.jsonl"
    job.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tiny_disk / "out"

    first = studio.run_batch(job, out)
    assert first.stopped.startswith("disk full") and first.done_now < 6
    assert not [p for p in out.rglob("*") if p.name.startswith(".tmp-")]
    for png in out.rglob("*.png"):
        with Image.open(png) as img:
            img.load()
    records = manifest.collect(out)
    assert all(r["state"] in ("done", "running") for r in records.values())

    subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_disk)], check=True)  # space freed
    second = studio.run_batch(job, out)
    assert second.stopped == "" and second.done_now + second.done_before == 6
    final = manifest.read_records(out / "manifest.jsonl")
    assert len(final) == 6 and {r["state"] for r in final} == {"done"}
    with studio.store.sessions() as s:
        keys = Counter(d.params["batch_key"] for d in s.query(Design))
    assert len(keys) == 6 and set(keys.values()) == {1}
