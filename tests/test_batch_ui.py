"""The Batch tab in Chromium: a bad file lists its bad lines; a good one runs, shows progress and results.
Cancelling a background run stops it between rows and the same file resumes."""
from __future__ import annotations

import json

import pytest
from browser import browser_page, needs_chromium, serve

from design_studio.batch import manifest
from design_studio.batch.background import BackgroundBatch, run_folder
from design_studio.batch.faults import Faults


def rows(count: int) -> str:
    return "".join(json.dumps(dict(prompt=f"silk scarf {i}", seed=i, n=1, steps=1, size="64x64",
                                   project="UI batch")) + "\n" for i in range(count))


@pytest.mark.browser
@needs_chromium
def test_batch_tab_validates_runs_and_shows_results(settings, tmp_path, artifacts):
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,n,size\ngood bag,1,64x64\n,1,64x64\nbag,0,64x64\n")
    good = tmp_path / "capsule.jsonl"
    good.write_text(rows(3))
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Batch").click()
        page.locator("#batch-file input[type=file]").set_input_files(str(bad))
        page.locator("#batch-validate").click()
        page.wait_for_function("document.querySelector('#batch-report').innerText.includes('line 4')")
        text = page.locator("#batch-report").inner_text()
        assert "3 rows: 1 valid, 2 bad" in text and "line 3: column prompt is empty" in text
        page.locator("#batch-start").click()
        page.get_by_text("nothing was started").first.wait_for(timeout=30_000)
        assert studio.store.designs() == []

        page.locator("#batch-file button[aria-label='Clear']").first.click()
        page.locator("#batch-file input[type=file]").set_input_files(str(good))
        page.locator("#batch-start").click()
        page.wait_for_function("document.querySelector('#batch-status').innerText.includes('Finished')",
                               timeout=120_000)
        assert "3 done now" in page.locator("#batch-status").inner_text()
        page.locator("#batch-gallery img").nth(2).wait_for(timeout=30_000)
        assert page.locator("#batch-gallery img").count() == 3
        page.screenshot(path=str(artifacts / "batch-tab.png"), full_page=True)
        assert len(studio.store.designs(kind="image")) == 3
        assert (run_folder(settings.downloads_dir / "batches", good) / "contact-sheet.html").is_file()


def test_cancel_stops_between_rows_and_the_same_file_resumes(studio, tmp_path, monkeypatch):
    job = tmp_path / "slow.jsonl"
    job.write_text(rows(4))
    out = run_folder(tmp_path / "batches", job)
    monkeypatch.setenv("STUDIO_BATCH_FAULTS", "slow=0.5")
    batch = BackgroundBatch(studio, job, out).start()
    import time

    deadline = time.time() + 120
    while (batch.progress is None or batch.progress.finished < 1) and time.time() < deadline:
        time.sleep(0.1)
    batch.cancel()
    batch.wait(120)
    assert not batch.running and batch.summary is not None, batch.error
    assert batch.summary.stopped == "cancelled" and 1 <= batch.summary.done_now < 4
    assert "Finished" in batch.status_text() and len(batch.result_images()) == batch.summary.done_now

    monkeypatch.delenv("STUDIO_BATCH_FAULTS")
    again = BackgroundBatch(studio, job, run_folder(tmp_path / "batches", job)).start()
    again.wait(120)
    assert again.summary.done_before == batch.summary.done_now
    assert again.summary.done_now == 4 - batch.summary.done_now
    assert len(manifest.read_records(out / "manifest.jsonl")) == 4
    assert isinstance(Faults.from_env(), Faults) and not Faults.from_env()
