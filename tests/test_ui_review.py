"""Two people in real Chromium: a designer signs in, makes a project, generates, shortlists and cannot
approve; a creative director compares and approves with a comment; the designer sees the decision."""
from __future__ import annotations

import pytest
from browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from team_server import PASSWORDS, serve_team, team_settings

pytestmark = [pytest.mark.browser, needs_chromium]
PROJECT = "SS27 handbags"


@pytest.fixture(scope="module")
def served(tmp_path_factory, models_dir):
    settings = team_settings(tmp_path_factory.mktemp("ui") / "data", models_dir)
    with serve_team(settings) as (studio, demo, url):
        yield studio, url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def sign_in(browser, url, name, password=None, width=1440, height=900):
    """A fresh browser context (own cookies), signed in through Gradio's login page."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.goto(url)
    page.locator("input[type=text]").first.fill(name)
    page.locator("input[type=password]").fill(password or PASSWORDS[name])
    page.get_by_role("button", name="Login").click()
    return page


def open_tab(page, name):
    page.get_by_role("tab", name=name).click()


def test_wrong_password_stays_on_the_login_page(served, browser):
    _, url = served
    page = sign_in(browser, url, "ann", "not-her-password")
    page.get_by_text("Incorrect credentials").first.wait_for(timeout=20_000)
    assert page.locator("#who").count() == 0
    page.context.close()


def test_designer_then_director_then_designer(served, browser, artifacts):
    studio, url = served
    # 1. The designer signs in and sees who she is; no Admin tab for her
    ann = sign_in(browser, url, "ann")
    ann.wait_for_function("document.querySelector('#who') && document.querySelector('#who').innerText.includes('ann')",
                          timeout=30_000)
    assert "Designer" in ann.locator("#who").inner_text()
    assert ann.get_by_role("tab", name="Admin").count() == 0

    # 2. She creates a project with a brief (the empty history tells her where to start)
    open_tab(ann, "Projects & history")
    ann.get_by_text("No designs yet").first.wait_for(timeout=10_000)
    ann.screenshot(path=str(artifacts / "team-history-empty.png"), full_page=True)
    ann.locator("#new-project").click()
    ann.locator("#new-project-name input, #new-project-name textarea").fill(PROJECT)
    ann.locator("#new-project-brief textarea").fill("Structured top-handle bags in cognac and black calf.")
    ann.locator("#create-project").click()
    ann.get_by_text("Structured top-handle bags").first.wait_for(timeout=20_000)

    # 3. She generates in that project (tiny profile) and shortlists two concepts
    open_tab(ann, "Studio")
    ann.locator("#prompt textarea").fill("a structured top-handle handbag in cognac leather")
    ann.get_by_role("textbox", name="Project", exact=True).fill(PROJECT)
    ann.locator("#generate").click()
    thumbs = ann.locator("#gallery img")
    thumbs.first.wait_for(timeout=90_000)
    ann.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #')")
    ann.locator("#shortlist-note textarea").fill("best proportions")
    ann.locator("#shortlist").click()
    ann.get_by_text("is on the review board").first.wait_for(timeout=20_000)
    thumbs.nth(1).click()
    ann.wait_for_function("document.querySelector('#chosen').innerText.includes('Chosen: design #2')")
    ann.locator("#shortlist").click()
    ann.get_by_text("Design #2 is on the review board").first.wait_for(timeout=20_000)
    ann.screenshot(path=str(artifacts / "team-studio-shortlisted.png"), full_page=True)
    designs = studio.history(project=PROJECT)
    assert len(designs) == 4 and {d.created_by for d in designs} == {"ann"}  # the signed-in designer
    assert sorted(d.id for d in designs if d.status == "shortlisted") == [1, 2]

    # 4. She cannot approve, even though the page lets her press the button
    open_tab(ann, "Review")
    ann.locator("#board-refresh").click()
    ann.locator("#board img").nth(1).wait_for(timeout=20_000)
    ann.locator("#decide-comment textarea").fill("I approve my own work")
    ann.locator("#decide").click()
    ann.get_by_text("may not decide").first.wait_for(timeout=20_000)
    ann.screenshot(path=str(artifacts / "team-review-designer-refused.png"), full_page=True)
    assert {d.status for d in studio.history(status="shortlisted")} == {"shortlisted"}
    assert studio.history(status="approved") == []

    # 5. The creative director compares the two and approves one with a comment
    cleo = sign_in(browser, url, "cleo")
    cleo.wait_for_function("document.querySelector('#who') && document.querySelector('#who').innerText.includes('cleo')",
                           timeout=30_000)
    open_tab(cleo, "Review")
    cleo.locator("#board img").nth(1).wait_for(timeout=20_000)
    cleo.locator("#board img").first.click()
    cleo.get_by_text("Brand-guard flags").first.wait_for(timeout=20_000)
    cleo.locator("#compare-ids label").nth(0).click()
    cleo.locator("#compare-ids label").nth(1).click()
    cleo.locator("#compare").click()
    cleo.locator("#compare-gallery img").nth(1).wait_for(timeout=20_000)
    assert "| seed |" in cleo.locator("#compare-table").inner_html() or cleo.locator("#compare-table table").count() == 1
    cleo.screenshot(path=str(artifacts / "team-review-compare.png"), full_page=True)
    target = cleo.locator("#decide-id input").input_value()
    assert target.startswith("#")
    cleo.locator("#decide-comment textarea").fill("Go to sample in cognac; keep the handle height.")
    cleo.locator("#decide").click()
    cleo.get_by_text("Recorded: design").first.wait_for(timeout=20_000)
    approved = studio.history(status="approved")
    assert len(approved) == 1
    decision = studio.decisions(approved[0].id)[0]
    assert (decision.actor, decision.role, decision.comment) == (
        "cleo", "creative_director", "Go to sample in cognac; keep the handle height.")

    # 6. The designer sees the decision (review log and her history)
    ann.reload()
    open_tab(ann, "Review")
    ann.locator("#decisions-log").get_by_text("keep the handle height").wait_for(timeout=20_000)
    open_tab(ann, "Projects & history")
    ann.locator("#open-id input").fill(str(approved[0].id))
    ann.locator("#open-design").click()
    ann.locator("#open-decisions").get_by_text("approved by cleo").wait_for(timeout=20_000)
    ann.locator("#lineage").get_by_text("approved").first.wait_for(timeout=20_000)
    ann.screenshot(path=str(artifacts / "team-history-decision.png"), full_page=True)
    for page in (ann, cleo):
        page.context.close()


def test_admin_sees_accounts_and_a_laptop_screen_still_fits(served, browser, artifacts):
    _, url = served
    ada = sign_in(browser, url, "ada", width=1280, height=800)
    ada.get_by_role("tab", name="Admin").click()
    ada.wait_for_function("document.querySelector('#users') && document.querySelector('#users').innerText.includes('cleo')",
                          timeout=20_000)
    ada.wait_for_timeout(500)
    ada.screenshot(path=str(artifacts / "team-admin.png"), full_page=True)
    # No horizontal scrolling at laptop width
    assert ada.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    ada.context.close()


def test_a_browser_session_gets_a_scratch_dir_removed_when_the_page_closes(served, browser):
    import time

    from design_studio.app import sessions_dir

    studio, url = served
    root = sessions_dir(studio.settings)
    before = {p.name for p in root.iterdir()}
    page = sign_in(browser, url, "cleo")
    page.locator("#who").wait_for(timeout=30_000)
    end = time.time() + 20
    while time.time() < end and not ({p.name for p in root.iterdir()} - before):
        time.sleep(0.1)
    mine = {p.name for p in root.iterdir()} - before
    assert len(mine) == 1
    page.context.close()
    end = time.time() + 30
    while time.time() < end and mine & {p.name for p in root.iterdir()}:
        time.sleep(0.2)
    assert not mine & {p.name for p in root.iterdir()}


def test_stop_button_cancels_a_running_generation_within_one_step(served, browser):
    import time

    studio, url = served
    before = len(studio.store.designs())
    ann = sign_in(browser, url, "ann")
    ann.locator("#who").wait_for(timeout=30_000)
    ann.locator("#prompt textarea").fill("a long study of a handbag")
    ann.get_by_text("Options").click()
    steps = ann.get_by_role("spinbutton", name="number input for Steps")
    steps.fill("150")
    steps.press("Enter")
    ann.locator("#generate").click()
    end = time.time() + 60
    while time.time() < end and not [j for j in studio.jobs.jobs(status="running") if "step" in j.progress]:
        time.sleep(0.05)
    (job,) = [j for j in studio.jobs.jobs(status="running") if j.actor == "ann"]
    ann.locator("#stop").click()
    end = time.time() + 30
    while time.time() < end and job.status == "running":
        time.sleep(0.05)
    assert job.status == "cancelled" and "stopped at the user's request" in job.message
    assert int(job.progress.split("step ")[1].split(" ")[0]) < 150
    assert len(studio.store.designs()) == before  # nothing from the stopped run
    ann.context.close()


def test_unknown_design_id_shows_an_error(served, browser):
    _, url = served
    ann = sign_in(browser, url, "ann")
    ann.locator("#who").wait_for(timeout=30_000)
    open_tab(ann, "Projects & history")
    ann.locator("#open-id input").fill("9999")
    ann.locator("#open-design").click()
    ann.get_by_text("design 9999 does not exist").first.wait_for(timeout=20_000)
    ann.context.close()
