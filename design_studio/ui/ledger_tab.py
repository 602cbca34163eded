"""The ledger dashboard: samples per style vs baseline and target band, time to approval, the funnel,
chain status, CSV exports, and the samples panel (order / receive / reject / release)."""
from __future__ import annotations

import pandas as pd
import gradio as gr

from ..services import Studio
from .common import actor_of, optional_int, user_errors

ALL = "All"
STAGE_LABELS = {"concepted": "Concepts", "shortlisted": "Shortlisted", "approved": "Approved",
                "sampled": "Sampled", "released": "Produced"}
SERIES_COLOURS = {"This season": "#1f4e79", "Baseline": "#a0a0a0", "Target −20 %": "#7fbf7f", "Target −30 %": "#2e8b57"}
DAY_BINS = [(0, 1, "< 1 day"), (1, 3, "1–3 days"), (3, 7, "3–7 days"), (7, 14, "1–2 weeks"),
            (14, 28, "2–4 weeks"), (28, float("inf"), "> 4 weeks")]


def _filter(value: str | None) -> str | None:
    return None if value in (None, "", ALL) else value


def chain_status(studio: Studio) -> str:
    check = studio.verify_ledger()
    if not check.chain_ok:
        return f"**Ledger chain BROKEN at entry {check.first_bad_seq}** · {check.chain_reason}"
    if check.problems:
        shown = "; ".join(str(p) for p in check.problems[:10])
        return f"**{len(check.problems)} design record problem(s)** · {shown}"
    return f"**Ledger chain intact** · {check.chain_reason}; every design has its event and signed manifest"


def ratio_frame(rows: list[dict]) -> tuple[pd.DataFrame, list[str]]:
    """Samples per style released, per collection (and season when several), beside the baseline and the
    target band; returns the frame and the bar order."""
    several_seasons = len({r["season"] for r in rows}) > 1
    data, order = [], []
    for r in rows:
        name = f"{r['collection']} {r['season']}" if several_seasons else r["collection"]
        current, base = r["samples_per_style_released"], r["baseline_samples_per_style"]
        series = [("Baseline", base)]
        if base:
            series += [("Target −20 %", base * 0.8), ("Target −30 %", base * 0.7)]
        series.append(("This season", current))
        for label, value in series:
            if value is not None:
                bar = f"{name} · {label.replace('Target ', '')}"
                order.append(bar)
                data.append({"bar": bar, "series": label, "samples per style": round(float(value), 3)})
    return pd.DataFrame(data, columns=["bar", "series", "samples per style"]), order


def funnel_frame(counts: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"stage": STAGE_LABELS[k], "styles": v} for k, v in counts.items()], columns=["stage", "styles"])


def approval_frame(days: list[float]) -> pd.DataFrame:
    return pd.DataFrame([{"time to approval": label, "styles": sum(lo <= d < hi for d in days)}
                         for lo, hi, label in DAY_BINS], columns=["time to approval", "styles"])


def summary_frame(rows: list[dict]) -> pd.DataFrame:
    def pct(v):
        return "" if v is None else f"{v * 100:+.0f} %".replace("-", "−")

    def num(v):
        return "" if v is None else f"{v:.2f}"

    return pd.DataFrame([{
        "collection": r["collection"], "season": r["season"], "released": r["styles_released"],
        "samples": r["samples_ordered"], "per style": num(r["samples_per_style_released"]),
        "baseline": num(r["baseline_samples_per_style"]), "change": pct(r["samples_change"]),
        "target": r["samples_target"].replace("_", " "),
        "median days": num(r["median_days_to_approval"]), "p90 days": num(r["p90_days_to_approval"]),
        "cost": ", ".join(f"{v} {k}" for k, v in r["sample_cost"].items()),
    } for r in rows], columns=["collection", "season", "released", "samples", "per style", "baseline", "change",
                               "target", "median days", "p90 days", "cost"])


def samples_frame(studio: Studio, collection: str | None) -> pd.DataFrame:
    return pd.DataFrame([{
        "sample": s.id, "design": s.design_id, "style": s.style_id, "collection": s.collection,
        "supplier": s.supplier, "material": s.material, "cost": f"{s.cost} {s.currency}", "status": s.status,
        "ordered by": s.ordered_by,
    } for s in studio.samples(collection=collection)],
        columns=["sample", "design", "style", "collection", "supplier", "material", "cost", "status", "ordered by"])


def dashboard(studio: Studio, collection: str | None, season: str | None):
    """Everything the tab shows for one filter: plots, table, status, choices."""
    from brand_guard.ratios import compute, funnel

    collection, season = _filter(collection), _filter(season)
    entries = studio.ledger.events()
    rows = studio.ratio_rows(collection, season)
    days = [d for g in compute(entries, collection, season) for d in g.days_to_approval]
    all_groups = compute(entries)
    collections = sorted({g.collection for g in all_groups} | {p.name for p in studio.store.projects()})
    seasons = sorted({g.season for g in all_groups})
    ratios, order = ratio_frame(rows)
    return (gr.BarPlot(value=ratios, sort=order), funnel_frame(funnel(entries, collection, season)), approval_frame(days),
            summary_frame(rows), chain_status(studio), [ALL, *collections], [ALL, *seasons])


def build_ledger_tab(studio: Studio) -> None:
    gr.Markdown("Samples per style that reaches production, against the pre-studio baseline and the −20…−30 % "
                "target band; time from first concept to approval; and how many styles reach each stage. Every "
                "figure comes from the hash-chained ledger.")
    with gr.Row(equal_height=True):
        status = gr.Markdown(elem_id="ledger-status")
        verify = gr.Button("Verify chain", size="sm", scale=0, min_width=140)
    with gr.Row(equal_height=True):
        collection = gr.Dropdown([ALL], value=ALL, label="Collection", allow_custom_value=False, scale=2)
        season = gr.Dropdown([ALL], value=ALL, label="Season", allow_custom_value=False, scale=1)
        refresh = gr.Button("Refresh", scale=0, min_width=120)
        ledger_csv = gr.DownloadButton("Ledger CSV", scale=0, min_width=140, elem_id="ledger-csv")
        ratios_csv = gr.DownloadButton("Ratios CSV", scale=0, min_width=140, elem_id="ratios-csv")
    with gr.Row():
        ratio_plot = gr.BarPlot(x="bar", y="samples per style", color="series", color_map=SERIES_COLOURS,
                                title="Samples per style released vs baseline and the −20…−30 % target",
                                x_title=" ", y_lim=[0, None], x_label_angle=-25, height=320, elem_id="ratio-plot", scale=3)
        funnel_plot = gr.BarPlot(x="stage", y="styles", title="Funnel: styles per stage", sort=list(STAGE_LABELS.values()),
                                 x_title=" ", y_lim=[0, None], height=320, elem_id="funnel-plot", scale=2)
    with gr.Row():
        days_plot = gr.BarPlot(x="time to approval", y="styles", title="Time from first concept to approval",
                               sort=[b[2] for b in DAY_BINS], y_lim=[0, None], height=280, elem_id="approval-plot", scale=2)
        summary = gr.Dataframe(label="Ratios per collection and season (target: samples per style −20…−30 % vs baseline)",
                               interactive=False, wrap=False,
                               elem_id="ratio-table", scale=3)

    with gr.Accordion("Samples and production", open=True):
        with gr.Row():
            design = gr.Number(label="Design #", precision=0, minimum=1, scale=1)
        with gr.Row():
            supplier = gr.Textbox(label="Supplier", placeholder="e.g. Atelier Rossi")
            material = gr.Textbox(label="Material", placeholder="e.g. vegetable-tanned calf")
            cost = gr.Textbox(label="Cost", placeholder="180.00")
            currency = gr.Textbox(label="Currency", value="EUR", max_length=3)
        with gr.Row():
            sku = gr.Textbox(label="SKU (release)", placeholder="SS27-TOTE-001")
            note = gr.Textbox(label="Note / reason")
        with gr.Row():
            order = gr.Button("Order sample", variant="primary")
            receive = gr.Button("Mark received")
            reject = gr.Button("Mark rejected", variant="stop")
            release = gr.Button("Release to production")
        act_result = gr.Markdown(elem_id="sample-result")
        samples = gr.Dataframe(label="Samples", interactive=False, elem_id="samples-table")

    outputs = [ratio_plot, funnel_plot, days_plot, summary, status, collection, season, samples, ledger_csv, ratios_csv]

    def export_files(coll, seas) -> tuple[str, str]:
        """Write the ledger and the ratio report as CSV where the server may serve them; return their paths."""
        folder = studio.settings.downloads_dir / "ledger"
        folder.mkdir(parents=True, exist_ok=True)
        ledger_file = folder / "ledger.csv"
        studio.ledger.export_csv(ledger_file)
        name = "-".join(x for x in ("ratios", _filter(coll), _filter(seas)) if x)
        ratios_file = folder / ("".join(c if c.isalnum() or c in "-_" else "_" for c in name) + ".csv")
        ratios_file.write_text(studio.ratio_report(_filter(coll), _filter(seas), "csv"), encoding="utf-8")
        return str(ledger_file), str(ratios_file)

    def on_refresh(coll, seas):
        r, f, d, s, st, colls, seasons = dashboard(studio, coll, seas)
        coll = coll if coll in colls else ALL
        seas = seas if seas in seasons else ALL
        return (r, f, d, s, st, gr.Dropdown(choices=colls, value=coll), gr.Dropdown(choices=seasons, value=seas),
                samples_frame(studio, _filter(coll)), *export_files(coll, seas))

    for trigger in (refresh.click, collection.input, season.input):
        trigger(on_refresh, [collection, season], outputs, api_name=False)
    verify.click(lambda: chain_status(studio), None, status, api_name=False)

    def act(kind):
        @user_errors
        def handler(design_id, supplier_, material_, cost_, currency_, sku_, note_, request: gr.Request):
            who = actor_of(studio, request)  # the signed-in account, never a typed name
            design_id = optional_int(design_id)
            if design_id is None:
                raise gr.Error("enter a design number first")
            if kind == "order":
                s = studio.order_sample(design_id, supplier_, material_, cost_, currency_, actor=who, note=note_ or "")
                return f"Sample #{s.id} ordered for design #{design_id}: {s.supplier}, {s.material}, {s.cost} {s.currency}."
            if kind == "receive":
                s = studio.receive_sample(design_id=design_id, actor=who, note=note_ or "")
                return f"Sample #{s.id} of design #{design_id} received."
            if kind == "reject":
                s = studio.reject_sample(design_id=design_id, actor=who, reason=note_ or "")
                return f"Sample #{s.id} of design #{design_id} rejected."
            e = studio.release_to_production(design_id, sku_, actor=who)
            return f"Design #{design_id} released to production as {sku_} (ledger entry {e.seq})."

        return handler

    inputs = [design, supplier, material, cost, currency, sku, note]
    for button, kind in ((order, "order"), (receive, "receive"), (reject, "reject"), (release, "release")):
        button.click(act(kind), inputs, act_result, api_name="release" if kind == "release" else f"sample_{kind}") \
            .success(on_refresh, [collection, season], outputs, api_name=False)

    # Fill everything from the ledger each time the page loads (the ledger moves on between visits)
    root = gr.context.Context.root_block
    if root is not None:
        root.load(on_refresh, [collection, season], outputs, api_name=False)
