"""``studio models pull PROFILE`` and ``studio models verify``: safetensors-only downloads and a lock file.

The lock file (``<models dir>/models.lock.json``) records, per model, the repository, the revision
asked for, the commit it resolved to and the sha256 of every file, so a later ``verify`` proves the
weights on disk are the ones pulled. The source is the Hugging Face Hub (``snapshot_download`` with
``allow_patterns``) or a local mirror folder holding ``<repo id>/`` trees (offline studios, tests).
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


def _from_mirror(entry: catalog.ModelEntry, source: Path, target: Path) -> str:
    """Copy the allowed files of ``source/<repo id>`` to ``target``; return the mirror's revision."""
    tree = Path(source) / entry.repo_id
    if not tree.is_dir():
        raise NotFound(f"the local source {source} has no folder {entry.repo_id}")
    rel_files = sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())
    chosen = [r for r in rel_files if _allowed(r, entry.allow_patterns)]
    if not any(r.endswith(".safetensors") for r in chosen):
        raise InvalidRequest(f"{tree} holds no safetensors weights matching {', '.join(entry.allow_patterns)}")
    for rel in chosen:
        dst = target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".part")
        shutil.copyfile(tree / rel, tmp)
        tmp.replace(dst)
    revision_file = tree / ".revision"  # a mirror may record the commit it was taken from
    if revision_file.exists():
        return revision_file.read_text().strip()
    digest = hashlib.sha256("".join(f"{r}:{sha256_file(tree / r)}\n" for r in chosen).encode()).hexdigest()
    return f"local-{digest[:16]}"


def _from_hub(entry: catalog.ModelEntry, target: Path) -> str:
    from huggingface_hub import HfApi, snapshot_download

    revision = HfApi().model_info(entry.repo_id, revision=entry.revision).sha  # pin the commit first
    snapshot_download(entry.repo_id, revision=revision, allow_patterns=list(entry.allow_patterns),
                      ignore_patterns=[f"*{s}" for s in FORBIDDEN_SUFFIXES], local_dir=str(target))
    return revision


def pull(profile: str, models_dir: Path, *, source: Path | None = None, log=print) -> list[PullResult]:
    """Fetch every non-tiny model of ``profile`` into ``<models dir>/<repo id>`` and update the lock file."""
    if profile not in catalog.PROFILES:
        raise InvalidRequest(f"profile {profile!r} is not one of {', '.join(catalog.PROFILES)}")
    if source is not None and not Path(source).is_dir():
        raise NotFound(f"--source {source} is not a folder")
    models_dir = Path(models_dir)
    lock = read_lock(models_dir)
    results = []
    for role, key in catalog.PROFILES[profile].items():
        entry = catalog.CATALOGUE[key]
        if entry.tiny:
            log(f"{role}\t{entry.repo_id}\tbuilt here, nothing to pull")
            continue
        target = models_dir / entry.repo_id
        target.mkdir(parents=True, exist_ok=True)
        revision = _from_mirror(entry, Path(source), target) if source is not None else _from_hub(entry, target)
        files = {}
        for path in sorted(p for p in target.rglob("*") if p.is_file()):
            rel = path.relative_to(target).as_posix()
            if rel.startswith(".") or "/." in "/" + rel or rel.endswith(".part"):
                continue  # hub cache metadata
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        lock["models"][entry.repo_id] = {
            "key": entry.key, "role": role, "repo_id": entry.repo_id, "requested_revision": entry.revision,
            "revision": revision, "licence": entry.licence, "source": str(source) if source else "huggingface",
            "files": files,
        }
        results.append(PullResult(entry.repo_id, revision, files))
        log(f"{role}\t{entry.repo_id}@{revision}\t{len(files)} files")
    atomic_write(lock_path(models_dir), json.dumps(lock, indent=2, sort_keys=True).encode())
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
