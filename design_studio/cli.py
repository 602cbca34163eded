"""The ``studio`` command: launch the UI, generate concepts, make meshes, list models.

Every bad input ends with one clear line on stderr and a non-zero exit; nothing is half-written.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .errors import StudioError

EXIT_BAD_INPUT = 2


def _settings(args):
    from pydantic import ValidationError

    from .settings import Settings

    overrides = {}
    for field in ("data_dir", "profile", "device", "host", "port"):
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise StudioError(f"setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _studio(args):
    from .services import Studio

    return Studio(_settings(args))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=["tiny", "standard", "quality"], help="model profile (default: STUDIO_PROFILE or tiny)")
    p.add_argument("--data-dir", dest="data_dir", help="where the database and files live (STUDIO_DATA_DIR)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="compute device (default auto)")


def cmd_launch(args) -> int:
    from .app import launch

    launch(_settings(args))
    return 0


def _unique_target(out_dir: Path, name: str) -> Path:
    target = out_dir / name
    stem, suffix, i = target.stem, target.suffix, 1
    while target.exists():
        target = out_dir / f"{stem}-{i}{suffix}"
        i += 1
    return target


def cmd_generate(args) -> int:
    studio = _studio(args)
    out_dir = Path(args.out)
    designs = studio.generate_concepts(
        args.prompt, n=args.n, seed=args.seed, steps=args.steps, guidance=args.guidance, width=args.width,
        height=args.height, negative_prompt=args.negative or "", project=args.project,
        actor=os.environ.get("USER", ""),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in designs:
        target = _unique_target(out_dir, f"design-{d.id}-seed-{d.seed}.png")
        shutil.copyfile(studio.store.file_path(d), target)
        print(f"{target}\tdesign {d.id}\tseed {d.seed}")
    return 0


def cmd_mesh(args) -> int:
    if not args.image:
        raise StudioError("give an IMAGE file to make a 3D mesh from")
    out = Path(args.out)
    if out.suffix.lower() != ".glb":
        raise StudioError(f"--out {str(out)!r} must end in .glb")
    studio = _studio(args)
    image = studio.import_image(args.image, project=args.project, name=Path(args.image).name,
                                actor=os.environ.get("USER", ""))
    mesh = studio.make_mesh(image.id, resolution=args.resolution, size_cm=args.size_cm)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(studio.store.file_path(mesh), out)
    print(f"{out}\tdesign {mesh.id}\tparent {image.id}\t{mesh.params['faces']} faces")
    return 0


def cmd_models(args) -> int:
    from . import catalog

    settings = _settings(args)
    if args.action == "list":
        for profile, roles in catalog.PROFILES.items():
            for role, key in roles.items():
                e = catalog.CATALOGUE[key]
                print(f"{profile}\t{role}\t{e.repo_id}@{e.revision}\t{e.licence_line}\t~{e.vram_gb:g} GB")
        return 0
    missing = 0
    for st in catalog.status(settings.profile, settings.resolved_models_dir):
        state = f"ok {st.path}" if st.available else f"MISSING: {st.how_to_get}"
        missing += not st.available
        print(f"{st.entry.role}\t{st.entry.repo_id}\t{state}")
    return 1 if missing else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Design Studio: concepts to 3D, on this machine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("launch", help="start the studio in the browser")
    _common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("generate", help="text -> concept images")
    _common(p)
    p.add_argument("prompt")
    p.add_argument("-n", type=int, default=4, help="number of images (default 4)")
    p.add_argument("--seed", type=int, help="base seed; image i uses seed+i (default random)")
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--width", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--negative", help="negative prompt")
    p.add_argument("--project", help="project (collection) name; default Inbox")
    p.add_argument("--out", required=True, help="folder to write the PNGs into")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("mesh", help="image -> textured 3D mesh (GLB)")
    _common(p)
    p.add_argument("image", nargs="?")
    p.add_argument("--out", required=True, help="FILE.glb")
    p.add_argument("--resolution", type=int, help="relief grid columns")
    p.add_argument("--size-cm", dest="size_cm", type=float, default=30.0, help="largest extent in cm (default 30)")
    p.add_argument("--project")
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("models", help="the model catalogue")
    _common(p)
    p.add_argument("action", choices=["list", "status"], nargs="?", default="list")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StudioError as exc:
        print(f"studio: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("studio: interrupted; finished items are saved", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
