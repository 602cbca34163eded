"""``studio models pull PROFILE`` and ``studio models verify``: safetensors-only downloads and a lock file.

``pull`` fetches the model of every role of a profile (concept, sketch, depth, every 3D backend's
models) as the registry lists them. The lock file (``<models dir>/models.lock.json``) records, per
model, the repository, the revision asked for, the commit it resolved to and the sha256 of every file,
so a later ``verify`` proves the weights on disk are the ones pulled. The source is the Hugging Face Hub
(``snapshot_download`` with ``allow_patterns``) or a local mirror folder holding ``<repo id>/`` trees
(offline studios, tests).

A model published only as a pickle (TripoSR's ``model.ckpt``) names that file in its entry's
``convert``: it is fetched into a staging folder, turned into safetensors by the entry's converter
(``torch.load(weights_only=True)``), and deleted; the lock keeps both hashes (``converted_from``). The
models folder never holds a pickle, so guarded mode stays safetensors-only.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from . import catalog
from .errors import InvalidRequest, NotFound
from .store.files import atomic_write

LOCK_NAME = "models.lock.json"
#: Never fetched or accepted, whatever a pattern says: pickles run code when loaded.
FORBIDDEN_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".msgpack", ".h5", ".onnx")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _allowed(rel: str, patterns: tuple[str, ...]) -> bool:
    if rel.lower().endswith(FORBIDDEN_SUFFIXES) or "/." in "/" + rel:
        return False
    return any(fnmatch.fnmatch(rel, p) for p in patterns)


def lock_path(models_dir: Path) -> Path:
    return Path(models_dir) / LOCK_NAME


def read_lock(models_dir: Path) -> dict:
    path = lock_path(models_dir)
    if not path.exists():
        return {"version": 1, "models": {}}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"lock file {path} is not valid JSON ({exc})") from None


@dataclass
class PullResult:
    repo_id: str
    revision: str
    files: dict[str, dict] = field(default_factory=dict)


def _from_mirror(entry: catalog.ModelEntry, source: Path, target: Path, staging: Path) -> str:
    """Copy the allowed files of ``source/<repo id>`` to ``target`` and the files to convert to ``staging``;
    return the mirror's revision."""
    tree = Path(source) / entry.repo_id
    if not tree.is_dir():
        raise NotFound(f"the local source {source} has no folder {entry.repo_id}")
    rel_files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    chosen = [r for r in rel_files if _allowed(r, entry.allow_patterns)]
    to_convert = [r for r in rel_files if r in entry.convert]
    if entry.convert and len(to_convert) != len(entry.convert):
        absent = sorted(set(entry.convert) - set(to_convert))
        raise InvalidRequest(f"{tree} lacks {', '.join(absent)}, the published weights of {entry.repo_id}")
    if not entry.convert and not any(r.endswith(".safetensors") for r in chosen):
        raise InvalidRequest(f"{tree} holds no safetensors weights matching {', '.join(entry.allow_patterns)}")
    for rel, root in [(r, target) for r in chosen] + [(r, staging) for r in to_convert]:
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        shutil.copyfile(tree / rel, tmp)
        tmp.replace(dst)
    revision_file = tree / ".revision"  # a mirror may record the commit it was taken from
    if revision_file.exists():
        return revision_file.read_text().strip()
    digest = hashlib.sha256("".join(f"{r}:{sha256_file(tree / r)}\n" for r in chosen + to_convert).encode()).hexdigest()
    return f"local-{digest[:16]}"


def _check_hub_reachable(profile: str) -> None:
    """Refuse a Hub pull up front when this process is offline (guarded mode sets ``HF_HUB_OFFLINE``)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        raise InvalidRequest(
            f"cannot pull {profile!r} from the Hugging Face Hub: this process is offline (HF_HUB_OFFLINE=1; "
            f"guarded mode, the default, sets it); run `STUDIO_GUARDED=0 HF_HUB_OFFLINE=0 studio models pull "
            f"{profile}` once on a machine that may download, or pull from a mirror with --source DIR")


def _from_hub(entry: catalog.ModelEntry, target: Path, staging: Path) -> str:
    from huggingface_hub import HfApi, snapshot_download

    revision = HfApi().model_info(entry.repo_id, revision=entry.revision).sha  # pin the commit first
    snapshot_download(entry.repo_id, revision=revision, allow_patterns=list(entry.allow_patterns),
                      ignore_patterns=[f"*{s}" for s in FORBIDDEN_SUFFIXES], local_dir=str(target))
    if entry.convert:  # the published pickles, only into the staging folder, only to be converted
        snapshot_download(entry.repo_id, revision=revision, allow_patterns=list(entry.convert),
                          local_dir=str(staging))
    return revision


def _hashes(root: Path) -> dict[str, dict]:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(".") or "/." in "/" + rel or rel.endswith(".part"):
            continue  # hub cache metadata, unfinished copies
        files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return files


def _convert(entry: catalog.ModelEntry, staging: Path, target: Path) -> dict[str, dict]:
    """Run the entry's converter on the staged pickles; return their hashes (the lock's ``converted_from``)."""
    from pipelines.errors import PipelineError

    converted_from = {rel: item for rel, item in _hashes(staging).items() if rel in entry.convert}
    # the converter reads the published folder as published: the configs fetched beside the pickles
    for rel in _hashes(target):
        if not rel.endswith(".safetensors") and not (staging / rel).exists():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(target / rel, staging / rel)
    try:
        catalog.resolve(entry.converter)(staging, target)
    except PipelineError as exc:
        raise InvalidRequest(f"converting {entry.repo_id} to safetensors failed: {exc}") from None
    return converted_from


def pull(profile: str, models_dir: Path, *, source: Path | None = None, log=print) -> list[PullResult]:
    """Fetch the model of every role of ``profile`` (and the base models those run on) into
    ``<models dir>/<repo id>`` and lock each one."""
    if profile not in catalog.PROFILES:
        raise InvalidRequest(f"profile {profile!r} is not one of {', '.join(catalog.PROFILES)}")
    if source is not None and not Path(source).is_dir():
        raise NotFound(f"--source {source} is not a folder")
    if source is None:
        _check_hub_reachable(profile)
    models_dir = Path(models_dir)
    lock = read_lock(models_dir)
    results = []
    done: set[str] = set()
    for role, entry in catalog.profile_models(profile):
        if entry.tiny:
            log(f"{role}\t{entry.repo_id}\tbuilt here, nothing to pull")
            continue
        if entry.repo_id in done:
            continue
        target = models_dir / entry.repo_id
        staging = models_dir / ".staging" / entry.repo_id
        target.mkdir(parents=True, exist_ok=True)
        try:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            if source is not None:
                revision = _from_mirror(entry, Path(source), target, staging)
            else:
                revision = _from_hub(entry, target, staging)
            converted_from = _convert(entry, staging, target) if entry.convert else {}
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        files = _hashes(target)
        if not any(rel.endswith(".safetensors") for rel in files):
            raise InvalidRequest(f"{target} holds no safetensors weights after the pull of {entry.repo_id}")
        record = {
            "key": entry.key, "role": role, "repo_id": entry.repo_id, "requested_revision": entry.revision,
            "revision": revision, "licence": entry.licence, "lineage": entry.lineage_line,
            "source": str(source) if source else "huggingface", "files": files,
        }
        if converted_from:
            record["converted_from"] = converted_from
            record["converter"] = entry.converter
        lock["models"][entry.repo_id] = record
        atomic_write(lock_path(models_dir), json.dumps(lock, indent=2, sort_keys=True).encode())
        done.add(entry.repo_id)
        results.append(PullResult(entry.repo_id, revision, files))
        converted = f" (converted from {', '.join(converted_from)})" if converted_from else ""
        log(f"{role}\t{entry.repo_id}@{revision}\t{len(files)} files{converted}")
    shutil.rmtree(models_dir / ".staging", ignore_errors=True)
    return results


def verify(models_dir: Path, *, log=print) -> list[str]:
    """Check every locked file's sha256 and that no pickle weights sit beside them; return the problems."""
    models_dir = Path(models_dir)
    if not lock_path(models_dir).exists():
        raise NotFound(f"no lock file at {lock_path(models_dir)}; run `studio models pull PROFILE` first")
    problems: list[str] = []
    for repo_id, item in sorted(read_lock(models_dir)["models"].items()):
        root = models_dir / repo_id
        bad_here = 0
        for rel, want in sorted(item["files"].items()):
            path = root / rel
            if not path.is_file():
                problems.append(f"{repo_id}/{rel}: missing")
            elif sha256_file(path) != want["sha256"]:
                problems.append(f"{repo_id}/{rel}: sha256 differs from the lock file (changed or corrupt)")
            else:
                continue
            bad_here += 1
        if root.is_dir():
            for path in root.rglob("*"):
                if path.is_file() and path.name.lower().endswith(FORBIDDEN_SUFFIXES):
                    problems.append(f"{repo_id}/{path.relative_to(root).as_posix()}: pickle-format weights are not allowed")
                    bad_here += 1
        log(f"{repo_id}@{item['revision']}\t{'ok' if not bad_here else f'{bad_here} problem(s)'}")
    for p in problems:
        log(f"  {p}")
    return problems
