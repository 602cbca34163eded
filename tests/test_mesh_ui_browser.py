"""A designer makes 3D in Chromium: previews beside the viewer, ZIP export, colourways side by side."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium, serve

pytestmark = [pytest.mark.browser, needs_chromium]


def test_make_3d_previews_export_and_colourways(settings, artifacts):
    from pipelines.render import gl_available

    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.locator("#prompt textarea").fill("a saddle bag with a thin leather strap")
        page.locator("#generate").click()
        page.locator("#gallery img").first.wait_for(timeout=60_000)
        page.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #')")
        page.locator("#gallery img").first.click()
        page.locator("#make3d").click()
        page.locator("#viewer canvas").wait_for(timeout=90_000)
        page.locator("#mesh-info").get_by_text("watertight").wait_for(timeout=60_000)
        if gl_available()[0]:
            page.locator("#mesh-thumbnail img").wait_for(timeout=30_000)
            page.locator("#mesh-turntable img").wait_for(timeout=30_000)
            video = page.locator("#mesh-turntable-mp4 video")  # the MP4 turntable, in a player
            video.wait_for(timeout=30_000)
            assert ".mp4" in (video.get_attribute("src") or "")
        mesh = studio.store.designs(kind="mesh")[0]
        assert mesh.params["backend"] == "depth-relief"

        page.locator("#export").click()
        page.locator("#exported a").first.wait_for(timeout=60_000)
        assert page.locator("#exported a").first.get_attribute("href").endswith(f"design-{mesh.id}.zip")
        page.locator("#export-format").get_by_text("usdz").click()
        page.locator("#export").click()
        page.wait_for_function(f"[...document.querySelectorAll('#exported a')].some(a => a.href.endsWith('design-{mesh.id}.usdz'))",
                               timeout=60_000)

        page.get_by_text("Colourways").first.click()
        page.locator("#make-colourways").click()
        if gl_available()[0]:
            page.locator("#colourways img").nth(3).wait_for(timeout=90_000)
        else:
            page.wait_for_timeout(10_000)
        page.wait_for_timeout(1500)
        page.screenshot(path=str(artifacts / "mesh-panel.png"), full_page=True)
        children = [d for d in studio.store.children(mesh.id)]
        assert len(children) == 4 and all(d.kind == "mesh" for d in children)


def test_zero_face_budget_shows_an_error_and_saves_nothing(settings):
    with serve(settings) as (studio, url), browser_page() as page:
        page.goto(url)
        page.locator("#prompt textarea").fill("a clutch")
        page.locator("#generate").click()
        page.locator("#gallery img").first.wait_for(timeout=60_000)
        page.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #')")
        page.get_by_text("3D settings").first.click()
        faces = page.locator("#mesh-faces input")
        faces.wait_for(state="visible")
        page.wait_for_timeout(500)  # typing into the accordion while it opens was sometimes reverted
        faces.fill("0")
        faces.press("Tab")
        page.locator("#make3d").click()
        page.get_by_text("Face budget must be at least 4").first.wait_for(timeout=30_000)
        assert studio.store.designs(kind="mesh") == []
