"""The ledger dashboard renders real plots in Chromium, filters by collection, exports CSV and records samples."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium
from gov_helpers import as_user
from team_server import PASSWORDS, serve_team, team_settings

pytestmark = [pytest.mark.browser, needs_chromium]


def season(studio):
    """Two collections: four styles in SS27 bags (two approved, one released), two in SS27 scarves."""
    studio.settings.season = "SS27"
    made = {}
    for project, n in (("SS27 bags", 4), ("SS27 scarves", 2)):
        made[project] = [studio.generate_concepts(f"{project} {i}", n=1, seed=i, project=project, actor=as_user(studio, "ann"))[0]
                         for i in range(n)]
    bags, scarves = made["SS27 bags"], made["SS27 scarves"]
    for d in bags[:3] + scarves[:1]:
        studio.shortlist(d.id, actor=as_user(studio, "ann"))
    for d in bags[:2] + scarves[:1]:
        studio.decide(d.id, "approved", "", actor=as_user(studio, "cleo"))
    for d, cost in ((bags[0], "180"), (bags[0], "150"), (bags[1], "90"), (scarves[0], "60")):
        studio.order_sample(d.id, "Atelier Rossi", "calf leather", cost, "EUR", actor=as_user(studio, "ann"))
    studio.release_to_production(bags[0].id, "SS27-TOTE-001", actor=as_user(studio, "cleo"))
    studio.set_baseline("SS27 bags", "", 4.0, 21.0, actor=as_user(studio, "ada"))
    studio.set_baseline("SS27 scarves", "", 2.5, 14.0, actor=as_user(studio, "ada"))
    return bags, scarves


def test_ledger_dashboard_in_chromium(tmp_path, models_dir, artifacts):
    settings = team_settings(tmp_path / "data", models_dir)
    with serve_team(settings) as (studio, demo, url), browser_page(1440, 1200) as page:
        bags, _ = season(studio)
        page.goto(url)  # signed in as the designer: the samples panel records her, not a typed name
        page.locator("input[type=text]").first.fill("ann")
        page.locator("input[type=password]").fill(PASSWORDS["ann"])
        page.get_by_role("button", name="Login").click()
        page.get_by_role("tab", name="Ledger").click()
        page.wait_for_function("document.querySelector('#ledger-status').innerText.includes('intact')", timeout=60_000)
        for plot in ("#ratio-plot", "#funnel-plot", "#approval-plot"):
            page.locator(f"{plot} canvas, {plot} svg").first.wait_for(timeout=30_000)
        table = page.locator("#ratio-table")
        table.get_by_text("SS27 bags").first.wait_for(timeout=30_000)
        text = table.inner_text()
        assert "−25 %" in text and "in band" in text  # bags: 3 samples for 1 released style vs a baseline of 4

        # order a sample from the samples panel; the table and the chain status follow
        page.get_by_label("Design #").fill(str(bags[1].id))
        page.get_by_label("Supplier").fill("Maison Duval")
        page.get_by_label("Material").fill("silk twill")
        page.get_by_label("Cost").fill("42.50")
        page.get_by_role("button", name="Order sample").click()
        page.wait_for_function("document.querySelector('#sample-result').innerText.includes('ordered for design')", timeout=30_000)
        page.locator("#samples-table").get_by_text("Maison Duval").first.wait_for(timeout=30_000)
        assert [s.supplier for s in studio.samples(bags[1].id)] == ["Atelier Rossi", "Maison Duval"]
        assert studio.samples(bags[1].id)[-1].ordered_by == "ann"
        assert (studio.ledger.events()[-1].actor, studio.ledger.events()[-1].role) == ("ann", "designer")
        page.wait_for_function("document.querySelector('#ratio-table').innerText.includes('+0 %')", timeout=30_000)

        page.wait_for_timeout(1500)  # let the vega plots finish their transitions
        page.screenshot(path=str(artifacts / "ledger-dashboard.png"), full_page=True)

        # a designer cannot release: the page shows the refusal and nothing is recorded
        count = studio.ledger.count()
        page.get_by_label("SKU (release)").fill("SS27-X")
        page.get_by_role("button", name="Release to production").click()
        page.get_by_text("may not release").first.wait_for(timeout=30_000)
        assert studio.ledger.count() == count

        # CSV export buttons hand out real files
        with page.expect_download(timeout=30_000) as dl:
            page.locator("#ledger-csv").click()
        text = open(dl.value.path(), encoding="utf-8").read()
        assert text.startswith("seq,event,actor") and text.count("\n") == studio.ledger.count() + 1
