"""A designer turns a sketch and a prompt into 3D on the page (TripoSG-scribble twin), and is told when the prompt is missing."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium, serve

from test_triposg import sketch_image

pytestmark = [pytest.mark.browser, needs_chromium]


def test_sketch_and_prompt_to_3d(settings, tmp_path, artifacts):
    sketch = tmp_path / "tote-sketch.png"
    sketch_image().save(sketch)
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.get_by_text("Sketch → 3D").first.click()
        page.locator("#mesh-sketch input[type=file]").set_input_files(str(sketch))
        page.locator("#mesh-sketch img").first.wait_for(timeout=30_000)
        page.locator("#sketch3d").click()
        page.get_by_text("Say what the sketch shows").first.wait_for(timeout=30_000)
        assert studio.store.designs(kind="mesh") == [] and studio.store.designs(kind="image") == []

        page.locator("#mesh-sketch-prompt textarea").fill("a structured tote with a top handle")
        page.locator("#sketch3d").click()
        page.locator("#mesh-info").get_by_text("triposg-scribble").wait_for(timeout=180_000)
        page.locator("#viewer canvas").wait_for(timeout=60_000)
        page.screenshot(path=str(artifacts / "sketch-to-3d.png"), full_page=True)
        mesh = studio.store.designs(kind="mesh")[0]
        assert mesh.params["backend"] == "triposg-scribble"
        assert mesh.params["prompt"] == "a structured tote with a top handle"
        assert mesh.prompt == "a structured tote with a top handle"
        assert studio.store.design(mesh.parent_id).kind == "image"
