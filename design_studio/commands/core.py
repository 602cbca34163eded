"""``studio launch | generate | mesh | models``."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import StudioError
from .common import actor, add_common, settings_from, studio_from, unique_target
from .governance import copy_manifest


def cmd_launch(args) -> int:
    from ..app import launch

    launch(settings_from(args))
    return 0


def cmd_generate(args) -> int:
    studio = studio_from(args)
    out_dir = Path(args.out)
    designs = studio.generate_concepts(
        args.prompt, n=args.n, seed=args.seed, steps=args.steps, guidance=args.guidance, width=args.width,
        height=args.height, negative_prompt=args.negative or "", project=args.project, actor=actor(),
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in designs:
        target = unique_target(out_dir, f"design-{d.id}-seed-{d.seed}.png")
        shutil.copyfile(studio.store.file_path(d), target)
        copy_manifest(studio.store.file_path(d), target)  # governance hook: the signed sidecar travels too
        print(f"{target}\tdesign {d.id}\tseed {d.seed}")
    return 0


def cmd_mesh(args) -> int:
    if not args.image:
        raise StudioError("give an IMAGE file to make a 3D mesh from")
    out = Path(args.out)
    if out.suffix.lower() != ".glb":
        raise StudioError(f"--out {str(out)!r} must end in .glb")
    studio = studio_from(args)
    image = studio.import_image(args.image, project=args.project, name=Path(args.image).name, actor=actor())
    mesh = studio.make_mesh(image.id, resolution=args.resolution, size_cm=args.size_cm, actor=actor())
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(studio.store.file_path(mesh), out)
    copy_manifest(studio.store.file_path(mesh), out)  # governance hook
    print(f"{out}\tdesign {mesh.id}\tparent {image.id}\t{mesh.params['faces']} faces")
    return 0


def cmd_models(args) -> int:
    from .. import catalog

    settings = settings_from(args)
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


def register(sub) -> None:
    p = sub.add_parser("launch", help="start the studio in the browser")
    add_common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("generate", help="text -> concept images")
    add_common(p)
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
    add_common(p)
    p.add_argument("image", nargs="?")
    p.add_argument("--out", required=True, help="FILE.glb")
    p.add_argument("--resolution", type=int, help="relief grid columns")
    p.add_argument("--size-cm", dest="size_cm", type=float, default=30.0, help="largest extent in cm (default 30)")
    p.add_argument("--project")
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("models", help="the model catalogue")
    add_common(p)
    p.add_argument("action", choices=["list", "status"], nargs="?", default="list")
    p.set_defaults(func=cmd_models)
