"""A designer turns a sketch into concepts in a real browser: upload a scan, or draw on the sketchpad."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium, serve

pytestmark = [pytest.mark.browser, needs_chromium]


def generate_from_sketch(page, studio, artifacts, name):
    page.locator("#start-from").get_by_text("Sketch", exact=True).click()
    page.locator("#prompt textarea").fill("a structured top-handle handbag")
    page.locator("#generate").click()
    thumbs = page.locator("#gallery img")
    thumbs.first.wait_for(timeout=90_000)
    page.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #')")
    page.screenshot(path=str(artifacts / name), full_page=True)
    designs = studio.store.designs(kind="image")
    assert thumbs.count() == len(designs) == 4
    assert {d.params["mode"] for d in designs} == {"sketch"}
    assert {d.params["sketch_backend"] for d in designs} == {"controlnet"}
    return designs


def test_uploaded_sketch_to_concepts_then_variations(settings, artifacts, tmp_path):
    from test_sketch import paper_scan

    scan = tmp_path / "scan.png"
    paper_scan().save(scan)
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.locator("#sketch canvas").first.wait_for(timeout=30_000)  # the editor is ready to take a file
        page.wait_for_timeout(1000)
        page.locator("#sketch input[type=file]").first.set_input_files(str(scan))
        page.wait_for_timeout(1500)  # the editor draws the upload on its canvas
        designs = generate_from_sketch(page, studio, artifacts, "concept-sketch-upload.png")
        assert designs[0].params["sketch_inverted"] is False
        page.locator("#vary").click()
        page.wait_for_function("document.querySelector('#chosen').innerText.includes('Variations of #')")
        children = [d for d in studio.store.designs(kind="image") if d.parent_id is not None]
        assert len(children) == 4 and {d.params["relation"] for d in children} == {"variation"}
        page.locator("#prompt textarea").fill("")
        page.locator("#reuse").click()  # fills the form back from the chosen variation
        page.wait_for_function(
            "document.querySelector('#prompt textarea').value === 'a structured top-handle handbag'")
        page.screenshot(path=str(artifacts / "concept-variations.png"), full_page=True)


def test_drawn_sketch_to_concepts(settings, artifacts):
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        canvas = page.locator("#sketch canvas").first
        canvas.wait_for(timeout=30_000)
        page.locator("#sketch button[aria-label='Brush']").first.click()  # the draw tool
        page.wait_for_timeout(300)
        box = canvas.bounding_box()
        x0, y0 = box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3
        page.mouse.move(x0, y0)
        page.mouse.down()
        for dx, dy in [(0.4, 0), (0.4, 0.4), (0, 0.4), (0, 0)]:  # a square bag body
            page.mouse.move(box["x"] + box["width"] * (0.3 + dx), box["y"] + box["height"] * (0.3 + dy), steps=12)
        page.mouse.up()
        page.wait_for_timeout(500)
        page.locator("#sketch").screenshot(path=str(artifacts / "concept-sketchpad-drawn.png"))
        designs = generate_from_sketch(page, studio, artifacts, "concept-sketch-drawn.png")
        assert designs[0].params["user_prompt"] == "a structured top-handle handbag"
