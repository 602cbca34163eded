"""Job files for batch runs: CSV or JSONL rows of prompts, each checked with its line number before any work.

A row names a prompt and, optionally, a negative prompt, a sketch, a category preset, the number of
images, a seed, steps, a size, adapters, a mesh backend and a project. ``load_job`` returns the good
rows and one ``RowProblem`` per bad row, so a designer fixes the whole file in one pass.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pipelines.concept import ConceptLimits

from .. import catalog
from ..settings import REPO_ROOT

MAX_SEED = 2**32 - 1
MAX_ROWS = 100_000
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

#: Product categories a row may name: the style presets shipped in ``assets/presets`` (the studio's
#: concept presets add the product-shot template and negative prompt).
CATEGORIES: tuple[str, ...] = tuple(sorted(p.stem for p in (REPO_ROOT / "assets" / "presets").glob("*.json")))

#: Column names as written in files (lower case, spaces or hyphens as underscores) -> our field.
ALIASES = {
    "prompt": "prompt",
    "negative_prompt": "negative_prompt", "negative": "negative_prompt",
    "sketch": "sketch", "sketch_path": "sketch",
    "category": "category", "category_preset": "category", "preset": "category",
    "n": "n", "images": "n",
    "seed": "seed",
    "steps": "steps",
    "guidance": "guidance",
    "size": "size", "width": "width", "height": "height",
    "adapters": "adapters", "adapter": "adapters",
    "mesh": "mesh", "mesh_backend": "mesh",
    "project": "project",
}
COLUMNS = ("prompt", "negative_prompt", "sketch", "category", "n", "seed", "steps", "guidance", "size",
           "width", "height", "adapters", "mesh", "project")


@dataclass(frozen=True)
class JobLimits(ConceptLimits):
    """Bounds a row is checked against: the concept limits plus file and default settings
    (the studio's settings and profile defaults fill them)."""

    max_image_pixels: int = 4096 * 4096
    default_n: int = 4
    default_steps: int = 30
    default_guidance: float = 7.0
    default_width: int = 512
    default_height: int = 512
    default_project: str = "Inbox"


@dataclass
class JobRow:
    """One valid row with every default filled in; ``seed`` is derived from the row when left blank."""

    line: int
    prompt: str
    negative_prompt: str = ""
    sketch: str = ""  # absolute path, or ""
    sketch_sha256: str = ""
    category: str = ""
    n: int = 4
    seed: int = 0
    seed_derived: bool = False
    steps: int = 30
    guidance: float = 7.0
    width: int = 512
    height: int = 512
    adapters: list[tuple[str, float]] = field(default_factory=list)
    mesh: str = ""
    project: str = "Inbox"

    def params(self) -> dict:
        """Everything that decides the outputs (the line number does not), in a JSON-able dict."""
        out = asdict(self)
        out.pop("line")
        out.pop("seed_derived")
        out.pop("sketch")  # the file's content decides, not where it lies
        out["adapters"] = [[name, weight] for name, weight in self.adapters]
        return out

    @property
    def seeds(self) -> list[int]:
        return [(self.seed + i) % (MAX_SEED + 1) for i in range(self.n)]


@dataclass(frozen=True)
class RowProblem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class Job:
    path: Path
    rows: list[JobRow]
    problems: list[RowProblem]
    total_rows: int

    @property
    def valid(self) -> bool:
        return not self.problems


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


# ---------------------------------------------------------------------------------------- reading
def _records(path: Path) -> tuple[list[tuple[int, dict]], list[RowProblem]]:
    """(line, raw dict) per row in the file, plus problems that concern the file or a whole line."""
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"job file {path.name!r}: the name must end in {', '.join(SUFFIXES)}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"job file {path.name!r} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    records, problems = [], []
    if kind == "jsonl":
        for number, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            try:
                obj = json.loads(raw, object_pairs_hook=_unique_keys)
            except json.JSONDecodeError as exc:
                problems.append(RowProblem(number, f"not valid JSON ({exc.msg} at column {exc.colno})"))
                continue
            except DuplicateKey as exc:
                problems.append(RowProblem(number, f"key {exc.key!r} is given twice; keep one"))
                continue
            if not isinstance(obj, dict):
                problems.append(RowProblem(number, f"a row must be a JSON object like {{\"prompt\": \"...\"}}, got {type(obj).__name__}"))
                continue
            records.append((number, obj))
        return records, problems
    # strict: a closing quote must end its value, and a quote still open at the end of the file is an error
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return [], problems
    except csv.Error as exc:
        raise ValueError(f"job file {path.name!r}: line 1: {_csv_error(exc)}") from None
    names = [h.strip() for h in header]
    twice = _columns_named_twice(names)
    if twice:
        raise ValueError(f"job file {path.name!r}: line 1: {twice}")
    start = reader.line_num + 1
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(RowProblem(start, _csv_error(exc)))
            break
        line, start = start, reader.line_num + 1
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(names):
            problems.append(RowProblem(line, f"{len(values)} values but the header has {len(names)} columns"))
            continue
        swallowed = _swallowed_rows(values, len(names), line, reader.line_num)
        if swallowed:
            problems.append(RowProblem(line, swallowed))
            continue
        records.append((line, dict(zip(names, values))))
    return records, problems


def _swallowed_rows(values: list[str], columns: int, first: int, last: int) -> str | None:
    """A reason when a quoted value over several lines looks like a quote left open, not a long prompt.

    It does when the row is left short of columns, or when the value spans lines and also holds commas
    (the rest of a row, or whole rows, taken in as text).
    """
    if last <= first:
        return None
    multi = [v for v in values if "\n" in v or "\r" in v]
    if not multi:
        return None
    if len(values) < columns:
        return (f"a quoted value runs from line {first} to line {last} and leaves the row with {len(values)} "
                f"of {columns} columns: a quote left open swallowed the rest of the row; close the quote")
    if any("," in v for v in multi):
        return (f"a quoted value runs from line {first} to line {last} and holds commas: a quote left open "
                "swallowed rows as text; close the quote, or put a prompt with commas on one line")
    return None


class DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``json.loads`` hook: a key given twice in one object is refused (JSON would keep the last)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def _csv_error(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc):
        return ("a quote opened here is never closed: it swallows the rest of the file; "
                "close the quote or remove it")
    return f"not valid CSV ({exc}); a value holding a quote must be quoted whole, with the quote doubled"


def _column_key(name: str) -> str:
    norm = re.sub(r"[\s\-]+", "_", str(name).strip().lower())
    return ALIASES.get(norm, norm)


def _columns_named_twice(names) -> str | None:
    """A reason when two column names mean the same column (``n`` and ``images``, ``Prompt`` and ``prompt``)."""
    seen: dict[str, str] = {}
    for name in names:
        key = _column_key(name)
        if not key:
            continue
        if key in seen:
            same = f"{seen[key]!r} and {name!r} both name column {key}" if seen[key] != name else f"column {name!r} is named twice"
            return f"{same}; keep one"
        seen[key] = name
    return None


#: Control characters refused in any value: C0 except TAB, LF and CR, DEL, and C1 (PostgreSQL refuses NUL
#: in text; the others hide in prompts and names and print as nothing).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _control_problems(raw: dict) -> list[str]:
    found = []
    for key, value in raw.items():
        for text in ([value] if isinstance(value, str) else value if isinstance(value, list) else []):
            match = _CONTROL.search(text) if isinstance(text, str) else None
            if match:
                found.append(f"column {key}: control character U+{ord(match.group()):04X} at character "
                             f"{match.start() + 1}; accepted: printable text")
        match = _CONTROL.search(str(key))
        if match:
            found.append(f"column name {str(key)!r}: control character U+{ord(match.group()):04X}; accepted: printable text")
    return found


def _normalise_keys(raw: dict) -> tuple[dict, list[str]]:
    out, unknown = {}, []
    for key, value in raw.items():
        norm = re.sub(r"[\s\-]+", "_", str(key).strip().lower())
        target = ALIASES.get(norm)
        if target is None:
            if norm:
                unknown.append(str(key))
            continue
        if isinstance(value, str):
            value = value.strip()
        if value is None or value == "":
            continue
        out[target] = value
    return out, unknown


# ---------------------------------------------------------------------------------------- checking
def _whole(name: str, value, lo: int, hi: int, problems: list[str]) -> int | None:
    accepted = f"accepted: a whole number from {lo} to {hi}"
    number: float
    if isinstance(value, bool):
        problems.append(f"column {name}: {value!r} is not a number; {accepted}")
        return None
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = float(str(value))
        except ValueError:
            problems.append(f"column {name}: {value!r} is not a number; {accepted}")
            return None
    if not math.isfinite(number) or number != int(number):
        problems.append(f"column {name}: {value!r} is not a whole number; {accepted}")
        return None
    if not lo <= number <= hi:
        problems.append(f"column {name}: {value!r} is out of range; {accepted}")
        return None
    return int(number)


def _side(name: str, value, limits: JobLimits, problems: list[str]) -> int | None:
    side = _whole(name, value, limits.min_side, limits.max_side, problems)
    if side is not None and side % 8:
        problems.append(f"column {name}: {value!r} is not a multiple of 8; accepted: multiples of 8 "
                        f"from {limits.min_side} to {limits.max_side} (try {side // 8 * 8 or 8})")
        return None
    return side


def _adapters(value, problems: list[str]) -> list[tuple[str, float]]:
    """``name`` or ``name:weight`` separated by ``;`` (CSV), or a JSON list of those / of {name, weight}."""
    items = value if isinstance(value, list) else [p for p in str(value).split(";") if p.strip()]
    out = []
    for item in items:
        if isinstance(item, dict):
            name, weight = item.get("name"), item.get("weight", 1.0)
        else:
            name, _, weight = str(item).strip().partition(":")
            weight = weight or 1.0
        try:
            weight = float(weight)
        except (TypeError, ValueError):
            weight = float("nan")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}", name.strip()):
            problems.append(f"column adapters: {item!r} is not an adapter name; accepted: names of letters, "
                            "digits, '.', '_' or '-', optionally ':weight', separated by ';'")
        elif not (math.isfinite(weight) and 0.0 <= weight <= 2.0):
            problems.append(f"column adapters: weight of {name!r} is {item!r}; accepted: a number from 0 to 2")
        else:
            out.append((name.strip(), weight))
    return out


def check_row(line: int, raw: dict, limits: JobLimits, base_dir: Path) -> JobRow | RowProblem:
    """A ``JobRow`` with defaults filled in, or one ``RowProblem`` naming every bad column of the row."""
    values, unknown = _normalise_keys(raw)
    problems: list[str] = _control_problems(raw)
    twice = _columns_named_twice(raw.keys())
    if twice:
        problems.append(twice)
    if unknown:
        problems.append(f"unknown column {', '.join(map(repr, unknown))}; accepted columns: {', '.join(COLUMNS)}")

    prompt = values.get("prompt", "")
    if not isinstance(prompt, str) or not prompt.strip():
        problems.append("column prompt is empty; accepted: a description of the product")
        prompt = ""
    elif len(prompt) > limits.max_prompt_chars:
        problems.append(f"column prompt is {len(prompt)} characters long; accepted: at most {limits.max_prompt_chars}")
    negative = values.get("negative_prompt", "")
    if not isinstance(negative, str) or len(negative) > limits.max_prompt_chars:
        problems.append(f"column negative_prompt: accepted: text of at most {limits.max_prompt_chars} characters")
        negative = ""

    category = str(values.get("category", "")).strip().lower().replace(" ", "-").replace("_", "-")
    if category and category not in CATEGORIES:
        problems.append(f"column category: {values['category']!r} is not a preset; accepted: {', '.join(CATEGORIES)}")

    n = _whole("n", values.get("n", limits.default_n), 1, limits.max_images, problems)
    steps = _whole("steps", values.get("steps", limits.default_steps), 1, limits.max_steps, problems)
    seed = _whole("seed", values["seed"], 0, MAX_SEED, problems) if "seed" in values else None
    guidance = values.get("guidance", limits.default_guidance)
    try:
        guidance = float(guidance)
        if not (math.isfinite(guidance) and 0.0 <= guidance <= limits.max_guidance):
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"column guidance: {values.get('guidance')!r}; accepted: a number from 0 to {limits.max_guidance:g}")
        guidance = None

    width, height = values.get("width", limits.default_width), values.get("height", limits.default_height)
    if "size" in values:
        match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", str(values["size"]))
        if match is None:
            problems.append(f"column size: {values['size']!r} is not WIDTHxHEIGHT; accepted: e.g. 512x512")
        else:
            width, height = match.group(1), match.group(2)
    width = _side("width", width, limits, problems)
    height = _side("height", height, limits, problems)

    sketch, sketch_sha = "", ""
    if "sketch" in values:
        candidate = Path(str(values["sketch"])).expanduser()
        candidate = candidate if candidate.is_absolute() else (base_dir / candidate)
        from pipelines.errors import InvalidImage
        from pipelines.images import open_image

        try:
            open_image(candidate, max_pixels=limits.max_image_pixels, name=str(values["sketch"]))
            sketch = str(candidate.resolve())
            sketch_sha = hashlib.sha256(candidate.read_bytes()).hexdigest()
        except InvalidImage as exc:
            problems.append(f"column sketch: {exc}; accepted: an existing PNG, JPEG or WEBP file "
                            "(relative paths start at the job file's folder)")

    adapters = _adapters(values["adapters"], problems) if "adapters" in values else []
    mesh = str(values.get("mesh", "")).strip().lower()
    if mesh in ("none", "no", "off"):
        mesh = ""
    if mesh and mesh not in catalog.MESH_BACKENDS:
        problems.append(f"column mesh: {values['mesh']!r} is not a mesh backend; "
                        f"accepted: {', '.join(catalog.MESH_BACKENDS)} or empty")
    project = str(values.get("project", limits.default_project)).strip() or limits.default_project
    if len(project) > 200:
        problems.append(f"column project is {len(project)} characters long; accepted: at most 200")

    if problems:
        return RowProblem(line, "; ".join(problems))
    row = JobRow(line=line, prompt=prompt, negative_prompt=negative, sketch=sketch, sketch_sha256=sketch_sha,
                 category=category, n=n, seed=seed or 0, steps=steps, guidance=guidance, width=width, height=height,
                 adapters=adapters, mesh=mesh, project=project)
    if seed is None:
        # A blank seed must give the same images on a rerun, or a resumed run would redo the row.
        params = row.params()
        params.pop("seed")
        row.seed = int(hashlib.sha256(canonical_json(params).encode()).hexdigest()[:8], 16)
        row.seed_derived = True
    return row


def load_job(path: str | Path, limits: JobLimits = JobLimits()) -> Job:
    """Read and check every row of a job file; raise ``ValueError`` only when the file itself is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"job file {str(path)!r} does not exist")
    records, problems = _records(path)
    if len(records) > MAX_ROWS:
        raise ValueError(f"job file {path.name!r} has {len(records)} rows; the limit is {MAX_ROWS}; split it")
    rows: list[JobRow] = []
    seen: dict[str, int] = {}
    for line, raw in records:
        checked = check_row(line, raw, limits, path.parent)
        if isinstance(checked, RowProblem):
            problems.append(checked)
            continue
        fingerprint = canonical_json(checked.params())
        if fingerprint in seen:
            problems.append(RowProblem(line, f"repeats line {seen[fingerprint]} (same prompt, seed and parameters); "
                                             "change its seed or remove it"))
            continue
        seen[fingerprint] = line
        rows.append(checked)
    if not records and not problems:
        problems.append(RowProblem(1, "the job file has no rows; accepted: a header line and at least one row with a prompt"))
    problems.sort(key=lambda p: p.line)
    return Job(path=path, rows=rows, problems=problems, total_rows=len(records))
