"""``studio launch | generate | mesh | models``."""
from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import StudioError
from .common import actor, add_common, settings_from, studio_from, unique_target


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
        print(f"{target}\tdesign {d.id}\tseed {d.seed}")
    return 0


def cmd_mesh(args) -> int:
    if args.list_backends:
        from .. import catalog

        profile = settings_from(args).profile
        for info in catalog.MESH_BACKENDS.values():
            entry = catalog.entry_for(profile, info.role)
            needs = f"needs: {info.inputs}; model {entry.repo_id}" + (f", ~{entry.vram_gb:g} GB" if entry.vram_gb else "")
            warn = "\tRESTRICTED, opt-in" if entry.restricted else ""
            print(f"{info.name}\t{entry.licence_line}\t{needs}\t{info.good_for}{warn}")
        return 0
    if bool(args.image) == bool(args.prompt):
        raise StudioError("give either an IMAGE file or --prompt TEXT to make a 3D mesh from")
    if not args.out:
        raise StudioError("--out FILE is required")
    out = Path(args.out)
    suffix = {"glb": ".glb", "obj": ".obj", "zip": ".zip"}[args.format]
    if out.suffix.lower() != suffix:
        raise StudioError(f"--out {str(out)!r} must end in {suffix} for --format {args.format}")
    studio = studio_from(args)
    common = dict(size_cm=args.size_cm, category=args.category, face_budget=args.face_budget,
                  texture_size=args.texture_size, material=args.material, seed=args.seed,
                  previews=not args.no_previews, actor=actor())
    if args.prompt:
        mesh = studio.make_mesh_from_prompt(args.prompt, backend=args.backend or "shap-e", project=args.project, **common)
        origin = "prompt"
    else:
        image = studio.import_image(args.image, project=args.project, name=Path(args.image).name, actor=actor())
        mesh = studio.make_mesh(image.id, backend=args.backend, resolution=args.resolution, **common)
        origin = f"parent {image.id}"
    files = studio.export_mesh(mesh.id, args.format)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        # The main file takes the asked name; OBJ side files (MTL, PNG) sit beside it under their own names.
        target = out if Path(name).suffix.lower() == suffix else out.parent / name
        if Path(name).suffix.lower() == ".mtl":
            target = out.with_suffix(".mtl")
        target.write_bytes(data)
    if args.format == "obj":
        _relink_obj(out, files)
    p = mesh.params
    print(f"{out}\tdesign {mesh.id}\t{origin}\t{p['backend']}\t{p['faces']} faces\t"
          f"{'watertight' if p.get('watertight') else 'NOT watertight'}\t{p['size_cm']:g} cm")
    return 0


def _relink_obj(out: Path, files: dict) -> None:
    """Point the written OBJ at the MTL written beside it under the --out stem."""
    old_mtl = next((n for n in files if n.endswith(".mtl")), None)
    if old_mtl and old_mtl != out.with_suffix(".mtl").name:
        text = out.read_text().replace(f"mtllib {old_mtl}", f"mtllib {out.with_suffix('.mtl').name}", 1)
        out.write_text(text)


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

    p = sub.add_parser("mesh", help="image or prompt -> textured 3D mesh (GLB, OBJ or ZIP)")
    add_common(p)
    p.add_argument("image", nargs="?", help="image file (PNG/JPEG/WEBP)")
    p.add_argument("--prompt", help="text -> 3D instead of an image (Shap-E)")
    p.add_argument("--backend", help="depth-relief | lrm | shap-e | hunyuan3d-2 (see --list-backends)")
    p.add_argument("--list-backends", dest="list_backends", action="store_true", help="list 3D backends and exit")
    p.add_argument("--out", help="FILE.glb, FILE.obj or FILE.zip (matching --format)")
    p.add_argument("--format", choices=["glb", "obj", "zip"], default="glb", help="default glb")
    p.add_argument("--resolution", type=int, help="relief grid columns (depth-relief)")
    p.add_argument("--size-cm", dest="size_cm", type=float, default=None,
                   help="largest extent in cm (default: the category's size, else 30)")
    p.add_argument("--category", help="product category for the default size (handbag, shoe, belt, ...)")
    p.add_argument("--face-budget", dest="face_budget", type=int, help="at most this many triangles")
    p.add_argument("--texture-size", dest="texture_size", type=int, help="texture atlas side in pixels")
    p.add_argument("--material", choices=["leather", "canvas", "metal", "silk"], help="PBR preset (default leather)")
    p.add_argument("--seed", type=int, help="seed of the generative backends (Shap-E)")
    p.add_argument("--no-previews", dest="no_previews", action="store_true", help="skip thumbnail and turntable")
    p.add_argument("--project")
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("models", help="the model catalogue")
    add_common(p)
    p.add_argument("action", choices=["list", "status"], nargs="?", default="list")
    p.set_defaults(func=cmd_models)
