"""A designer walks the whole path in a real browser: prompt -> concepts -> Make 3D -> viewer + GLB."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium, serve

pytestmark = [pytest.mark.browser, needs_chromium]


def test_prompt_to_3d_in_chromium(settings, artifacts):
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.locator("#prompt textarea").fill("a structured top-handle handbag in cognac leather")
        page.locator("#generate").click()
        thumbs = page.locator("#gallery img")
        thumbs.first.wait_for(timeout=60_000)
        assert thumbs.count() == 4
        page.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #')")
        thumbs.nth(1).click()
        page.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #2')")
        page.locator("#make3d").click()
        page.locator("#viewer canvas").wait_for(timeout=60_000)
        page.locator("#download a").first.wait_for(timeout=30_000)
        page.wait_for_timeout(3000)  # let the WebGL viewer draw its first frames
        page.locator("#viewer").screenshot(path=str(artifacts / "studio-viewer.png"))
        page.screenshot(path=str(artifacts / "studio-prompt-to-3d.png"), full_page=True)

        meshes = studio.store.designs(kind="mesh")
        assert len(meshes) == 1 and meshes[0].parent_id == 2
        assert len(studio.store.designs(kind="image")) == 4
        href = page.locator("#download a").first.get_attribute("href")
        assert href and href.endswith(f"design-{meshes[0].id}.glb")


def test_empty_prompt_shows_an_error_and_writes_nothing(settings):
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.locator("#generate").click()
        page.get_by_text("prompt is empty").first.wait_for(timeout=30_000)
        assert studio.store.designs() == []
