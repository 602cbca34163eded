"""The ledger dashboard renders real plots in Chromium, filters by collection, exports CSV and records samples."""
from __future__ import annotations

import pytest
from browser import browser_page, needs_chromium, serve

pytestmark = [pytest.mark.browser, needs_chromium]


def season(studio):
    """Two collections: four styles in SS27 bags (two approved, one released), two in SS27 scarves."""
    studio.settings.season = "SS27"
    made = {}
    for project, n in (("SS27 bags", 4), ("SS27 scarves", 2)):
        made[project] = [studio.generate_concepts(f"{project} {i}", n=1, seed=i, project=project, actor="ana")[0]
                         for i in range(n)]
    bags, scarves = made["SS27 bags"], made["SS27 scarves"]
    for d in bags[:3] + scarves[:1]:
        studio.record_design_event("shortlisted", d.id, "ana", "designer")
    for d in bags[:2] + scarves[:1]:
        studio.record_design_event("approved", d.id, "chloe", "creative_director")
    for d, cost in ((bags[0], "180"), (bags[0], "150"), (bags[1], "90"), (scarves[0], "60")):
        studio.order_sample(d.id, "Atelier Rossi", "calf leather", cost, "EUR", actor="ana", role="designer")
    studio.release_to_production(bags[0].id, "SS27-TOTE-001", actor="chloe", role="creative_director")
    studio.set_baseline("SS27 bags", "", 4.0, 21.0, actor="root", role="admin")
    studio.set_baseline("SS27 scarves", "", 2.5, 14.0, actor="root", role="admin")
    return bags, scarves


def test_ledger_dashboard_in_chromium(settings, artifacts):
    from design_studio.services import Studio

    bags, _ = season(Studio(settings))
    with serve(settings) as (studio, url), browser_page(1440, 1200) as page:
        page.goto(url)
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
        page.get_by_label("Your name").fill("ana")
        page.get_by_label("Supplier").fill("Maison Duval")
        page.get_by_label("Material").fill("silk twill")
        page.get_by_label("Cost").fill("42.50")
        page.get_by_role("button", name="Order sample").click()
        page.wait_for_function("document.querySelector('#sample-result').innerText.includes('ordered for design')", timeout=30_000)
        page.locator("#samples-table").get_by_text("Maison Duval").first.wait_for(timeout=30_000)
        assert [s.supplier for s in studio.samples(bags[1].id)] == ["Atelier Rossi", "Maison Duval"]
        page.wait_for_function("document.querySelector('#ratio-table').innerText.includes('+0 %')", timeout=30_000)

        page.wait_for_timeout(1500)  # let the vega plots finish their transitions
        page.screenshot(path=str(artifacts / "ledger-dashboard.png"), full_page=True)

        # a designer cannot release: the page shows the refusal and nothing is recorded
        count = studio.ledger.count()
        page.get_by_label("SKU (release)").fill("SS27-X")
        page.get_by_role("button", name="Release to production").click()
        page.get_by_text("cannot release to production").first.wait_for(timeout=30_000)
        assert studio.ledger.count() == count

        # CSV export buttons hand out real files
        with page.expect_download(timeout=30_000) as dl:
            page.locator("#ledger-csv").click()
        text = open(dl.value.path(), encoding="utf-8").read()
        assert text.startswith("seq,event,actor") and text.count("\n") == studio.ledger.count() + 1
