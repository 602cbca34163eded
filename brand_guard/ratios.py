"""Sample-to-production ratio and time-to-approval per collection and season, from ledger events,
against baselines (target bands: samples −20…−30 %, time to approval −15…−30 %)."""

# Payload convention (set by the ledger): every event carries `style_id` (the root design of a
# lineage) and `collection`; `season` when known (else "unspecified"). Definitions:
# - a style is concepted / shortlisted / approved / sampled / released when it has at least one
#   design_created / shortlisted / approved / sample_ordered / released_to_production event;
# - samples_per_style_released = all samples ordered in the group / styles released (every sample
#   counts, including those of styles later dropped: that is the waste the target is about);
#   samples_per_style_approved = samples ordered / styles approved;
# - days to approval (release) of a style = first approved (released_to_production) minus first
#   design_created of that style, in days; median and p90 use linear interpolation (numpy default).

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

import numpy as np

from .csvsafe import write_rows
from .errors import RatiosError

SAMPLES_BAND = (-0.30, -0.20)
TIME_BAND = (-0.30, -0.15)
UNSPECIFIED = "unspecified"
STAGES = ("concepted", "shortlisted", "approved", "sampled", "released")
_STAGE_EVENT = {
    "concepted": "design_created",
    "shortlisted": "shortlisted",
    "approved": "approved",
    "sampled": "sample_ordered",
    "released": "released_to_production",
}


def _as_dict(entry: Any) -> dict:
    return entry.to_dict() if hasattr(entry, "to_dict") else dict(entry)


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise RatiosError(f"created_at {value!r} is not an ISO 8601 time") from exc


def _group_key(payload: dict) -> tuple[str, str]:
    return str(payload.get("collection") or UNSPECIFIED), str(payload.get("season") or UNSPECIFIED)


def _days(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 86400.0


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(np.asarray(values, dtype=np.float64), q)) if values else None


@dataclass
class GroupRatios:
    """Figures for one (collection, season)."""

    collection: str
    season: str
    styles_concepted: int = 0
    styles_shortlisted: int = 0
    styles_approved: int = 0
    styles_sampled: int = 0
    styles_released: int = 0
    samples_ordered: int = 0
    samples_per_style_released: float | None = None
    samples_per_style_approved: float | None = None
    sample_cost: dict[str, Decimal] = field(default_factory=dict)
    days_to_approval: list[float] = field(default_factory=list)
    days_to_release: list[float] = field(default_factory=list)
    median_days_to_approval: float | None = None
    p90_days_to_approval: float | None = None
    median_days_to_release: float | None = None
    p90_days_to_release: float | None = None

    def to_row(self) -> dict[str, Any]:
        """Flat, JSON-ready row (costs as strings per currency, day lists dropped)."""
        row = asdict(self)
        row.pop("days_to_approval")
        row.pop("days_to_release")
        row["sample_cost"] = {k: str(v) for k, v in sorted(self.sample_cost.items())}
        return row


def compute(entries: Iterable[Any], collection: str | None = None, season: str | None = None) -> list[GroupRatios]:
    """Ratios per (collection, season), sorted, optionally filtered to one collection and/or season."""
    groups: dict[tuple[str, str], dict] = {}
    for raw in sorted((_as_dict(e) for e in entries), key=lambda e: (_parse_time(e["created_at"]), e.get("seq", 0))):
        payload = raw.get("payload") or {}
        key = _group_key(payload)
        if collection is not None and key[0] != collection or season is not None and key[1] != season:
            continue
        g = groups.setdefault(key, {"stages": {s: set() for s in STAGES}, "samples": 0, "cost": {}, "first": {}, "approved": {}, "released": {}})
        style = str(payload.get("style_id") or raw.get("subject_id"))
        event, when = raw["event"], _parse_time(raw["created_at"])
        for stage, stage_event in _STAGE_EVENT.items():
            if event == stage_event:
                g["stages"][stage].add(style)
        if event == "design_created":
            g["first"].setdefault(style, when)
        elif event == "approved":
            g["approved"].setdefault(style, when)
        elif event == "released_to_production":
            g["released"].setdefault(style, when)
        elif event == "sample_ordered":
            g["samples"] += 1
            try:
                cost = Decimal(str(payload.get("cost", "0")))
            except InvalidOperation as exc:
                raise RatiosError(f"sample_ordered seq {raw.get('seq')}: cost {payload.get('cost')!r} is not a number") from exc
            currency = str(payload.get("currency") or "???")
            g["cost"][currency] = g["cost"].get(currency, Decimal(0)) + cost
    out: list[GroupRatios] = []
    for (coll, seas), g in sorted(groups.items()):
        r = GroupRatios(coll, seas, *(len(g["stages"][s]) for s in STAGES))
        r.samples_ordered = g["samples"]
        r.sample_cost = dict(sorted(g["cost"].items()))
        r.samples_per_style_released = g["samples"] / r.styles_released if r.styles_released else None
        r.samples_per_style_approved = g["samples"] / r.styles_approved if r.styles_approved else None
        r.days_to_approval = sorted(_days(g["first"][s], t) for s, t in g["approved"].items() if s in g["first"])
        r.days_to_release = sorted(_days(g["first"][s], t) for s, t in g["released"].items() if s in g["first"])
        r.median_days_to_approval = _quantile(r.days_to_approval, 0.5)
        r.p90_days_to_approval = _quantile(r.days_to_approval, 0.9)
        r.median_days_to_release = _quantile(r.days_to_release, 0.5)
        r.p90_days_to_release = _quantile(r.days_to_release, 0.9)
        out.append(r)
    return out


def funnel(entries: Iterable[Any], collection: str | None = None, season: str | None = None) -> dict[str, int]:
    """Distinct styles per stage: concepted → shortlisted → approved → sampled → released."""
    totals = {stage: 0 for stage in STAGES}
    for r in compute(entries, collection, season):
        for stage in STAGES:
            totals[stage] += getattr(r, f"styles_{stage}")
    return totals


# --------------------------------------------------------------------------- baselines


@dataclass(frozen=True)
class Baseline:
    """Pre-studio figures for a collection (and season; '' applies to every season of it)."""

    collection: str
    season: str
    samples_per_style: float
    days_to_approval: float


BASELINE_FIELDS = ["collection", "season", "samples_per_style", "days_to_approval"]


def load_baselines_csv(path_or_file: Path | str | TextIO) -> list[Baseline]:
    """Read baselines (header: collection,season,samples_per_style,days_to_approval); errors name the line."""
    text = Path(path_or_file).read_text("utf-8") if isinstance(path_or_file, (str, Path)) else path_or_file.read()
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != BASELINE_FIELDS:
        raise RatiosError(f"baseline CSV header {reader.fieldnames}; expected {BASELINE_FIELDS}")
    out: list[Baseline] = []
    for line_no, row in enumerate(reader, start=2):
        collection = (row.get("collection") or "").strip()
        if not collection:
            raise RatiosError(f"baseline CSV line {line_no}: collection is empty; expected a collection name")
        numbers = []
        for name in ("samples_per_style", "days_to_approval"):
            value = (row.get(name) or "").strip()
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not number > 0 or number == float("inf"):
                raise RatiosError(f"baseline CSV line {line_no}: {name} {value!r}; expected a positive number")
            numbers.append(number)
        out.append(Baseline(collection, (row.get("season") or "").strip(), *numbers))
    return out


def find_baseline(baselines: Iterable[Baseline], collection: str, season: str) -> Baseline | None:
    """The baseline for exactly (collection, season), else the collection-wide one (season '')."""
    fallback = None
    for b in baselines:
        if b.collection == collection and b.season == season:
            return b
        if b.collection == collection and b.season in ("", UNSPECIFIED):
            fallback = b
    return fallback


def reduction_vs_baseline(current: float | None, baseline: float | None) -> float | None:
    """Relative change vs baseline: −0.25 means 25 % fewer (better). None when either is missing."""
    if current is None or baseline is None or baseline <= 0:
        return None
    return (current - baseline) / baseline


def band_status(change: float | None, band: tuple[float, float]) -> str:
    """'in_band' inside [low, high]; 'beyond' when lower than low (better than target); 'short' above high;
    'no_data' when there is nothing to compare."""
    if change is None:
        return "no_data"
    low, high = band
    if change < low - 1e-12:
        return "beyond"
    if change > high + 1e-12:
        return "short"
    return "in_band"


def in_target_band(change: float | None, band: tuple[float, float] = SAMPLES_BAND) -> bool:
    """Whether `change` lies inside the target band (ends included)."""
    return band_status(change, band) == "in_band"


# --------------------------------------------------------------------------- report


def report_rows(entries: Iterable[Any], baselines: Iterable[Baseline] = (), collection: str | None = None, season: str | None = None) -> list[dict[str, Any]]:
    """One flat row per group with baseline comparison columns."""
    baselines = list(baselines)
    rows = []
    for r in compute(entries, collection, season):
        row = r.to_row()
        b = find_baseline(baselines, r.collection, r.season)
        s_change = reduction_vs_baseline(r.samples_per_style_released, b.samples_per_style if b else None)
        t_change = reduction_vs_baseline(r.median_days_to_approval, b.days_to_approval if b else None)
        row.update({
            "baseline_samples_per_style": b.samples_per_style if b else None,
            "samples_change": s_change,
            "samples_target": band_status(s_change, SAMPLES_BAND),
            "baseline_days_to_approval": b.days_to_approval if b else None,
            "days_to_approval_change": t_change,
            "days_to_approval_target": band_status(t_change, TIME_BAND),
        })
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k} {v}" for k, v in value.items())
    return str(value)


def report(
    entries: Iterable[Any], baselines: Iterable[Baseline] = (), collection: str | None = None,
    season: str | None = None, format: str = "csv",
) -> str:
    """The ratio report as CSV, JSON or a small self-contained HTML page."""
    rows = report_rows(entries, baselines, collection, season)
    columns = list(rows[0]) if rows else ["collection", "season"]
    if format == "json":
        return json.dumps(rows, indent=1, sort_keys=False, ensure_ascii=False)
    if format == "csv":
        buf = io.StringIO()
        write_rows(buf, columns, ({k: _cell(v) for k, v in row.items()} for row in rows))
        return buf.getvalue()
    if format == "html":
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row[c]))}</td>" for c in columns) + "</tr>" for row in rows)
        title = "Sample-to-production report" + (f": {html.escape(collection)}" if collection else "")
        return (
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>" + title + "</title><style>"
            "body{font-family:system-ui,sans-serif;margin:2rem}table{border-collapse:collapse}"
            "th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}th{background:#f4f4f4}"
            "</style></head><body><h1>" + title + "</h1><table><thead><tr>" + head + "</tr></thead><tbody>"
            + body + "</tbody></table></body></html>\n"
        )
    raise RatiosError(f"report format {format!r}; accepted: 'csv', 'json', 'html'")
