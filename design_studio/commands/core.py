"""``studio launch | generate | mesh | models``."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..errors import StudioError
from .common import add_common, add_login, login, settings_from, studio_from, unique_target
from .governance import copy_manifest


def cmd_launch(args) -> int:
    from ..app import launch

    launch(settings_from(args))
    return 0


def cmd_generate(args) -> int:
    if args.sketch and args.init_image:
        raise StudioError("give either --sketch or --init-image, not both")
    for flag, value in (("--sketch", args.sketch), ("--init-image", args.init_image)):
        if value and not Path(value).is_file():
            raise StudioError(f"{flag} {value!r}: no such file")
    studio = studio_from(args)
    who = login(args, studio)
    out_dir = Path(args.out)
    designs = studio.generate_concepts(
        args.prompt, n=args.n, seed=args.seed, steps=args.steps, guidance=args.guidance, width=args.width,
        height=args.height, negative_prompt=args.negative or "", project=args.project, actor=who,
        sketch=args.sketch, sketch_mode=args.sketch_mode, init_image=args.init_image, strength=args.strength,
        adapters=args.adapter or [], preset=args.preset, scheduler=args.scheduler, speed=args.speed,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for d in designs:
        target = unique_target(out_dir, f"design-{d.id}-seed-{d.seed}.png")
        shutil.copyfile(studio.store.file_path(d), target)
        copy_manifest(studio.store.file_path(d), target)  # governance hook: the signed sidecar travels too
        print(f"{target}\tdesign {d.id}\tseed {d.seed}")
    for note in designs[0].params.get("memory_fallbacks", []):
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_mesh(args) -> int:
    from .. import catalog

    if args.list_backends:
        profile = settings_from(args).profile
        for info, entry in catalog.backends_for(profile):
            needs = f"needs: {info.inputs}; model {entry.repo_id}" + (f", ~{entry.vram_gb:g} GB" if entry.vram_gb else "")
            print(f"{info.name}\t{entry.licence_line}\t{needs}\t{info.good_for}")
        return 0
    if args.backend is not None and args.backend not in catalog.MESH_BACKENDS:
        raise StudioError(f"--backend {args.backend!r} is not one of {', '.join(catalog.MESH_BACKENDS)}")
    info = catalog.MESH_BACKENDS.get(args.backend or "")
    sketch = bool(info and info.needs_prompt)
    if sketch:
        if not args.image or not (args.prompt or "").strip():
            raise StudioError(f"--backend {args.backend} makes 3D from a SKETCH file and --prompt TEXT saying what it "
                              "shows; give both")
    elif bool(args.image) == bool(args.prompt):
        raise StudioError("give either an IMAGE file or --prompt TEXT to make a 3D mesh from")
    if args.texture is not None and args.texture not in catalog.TEXTURE_MODES:
        raise StudioError(f"--texture {args.texture!r} is not one of {', '.join(catalog.TEXTURE_MODES)}")
    if args.texture == "multiview" and args.prompt and not sketch:
        raise StudioError("--texture multiview paints from a concept image; give an IMAGE file, not --prompt")
    if not args.out:
        raise StudioError("--out FILE is required")
    out = Path(args.out)
    suffix = {"glb": ".glb", "obj": ".obj", "usdz": ".usdz", "zip": ".zip"}[args.format]
    if out.suffix.lower() != suffix:
        raise StudioError(f"--out {str(out)!r} must end in {suffix} for --format {args.format}")
    studio = studio_from(args)
    who = login(args, studio)
    common = dict(size_cm=args.size_cm, category=args.category, face_budget=args.face_budget,
                  texture_size=args.texture_size, material=args.material, seed=args.seed,
                  previews=not args.no_previews, topology=args.topology, actor=who)
    if args.prompt and not sketch:
        mesh = studio.make_mesh_from_prompt(args.prompt, backend=args.backend or "shap-e", project=args.project,
                                            resolution=args.resolution, **common)
        origin = "prompt"
    else:
        image = studio.import_image(args.image, project=args.project, name=Path(args.image).name, actor=who)
        mesh = studio.make_mesh(image.id, backend=args.backend, resolution=args.resolution,
                                prompt=args.prompt if sketch else None, texture=args.texture, **common)
        origin = f"parent {image.id}"
    files = studio.export_mesh(mesh.id, args.format)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        # The main file takes the asked name; OBJ side files (MTL, PNG) sit beside it under their own names.
        target = out if Path(name).suffix.lower() == suffix else out.parent / name
        if Path(name).suffix.lower() == ".mtl":
            target = out.with_suffix(".mtl")
        target.write_bytes(data)
        if args.format == "glb":  # governance hook: the signed sidecar travels with the GLB
            copy_manifest(studio.store.file_path(mesh), target)
    if args.format == "obj":
        _relink_obj(out, files)
    p = mesh.params
    print(f"{out}\tdesign {mesh.id}\t{origin}\t{p['backend']}\t{p['faces']} faces\t"
          f"{'watertight' if p.get('watertight') else 'NOT watertight'}\t{p['size_cm']:g} cm\t"
          f"texture {(p.get('texture') or {}).get('mode', 'project')}")
    topo = p.get("topology") or {}
    if topo.get("kind") == "quads":
        glb_note = "; GLB holds triangles only (each quad as two)" if args.format in ("glb", "zip") else ""
        print(f"quads\t{topo['quads']} quads\t{topo['triangles']} triangles\tfrom {topo['faces_in']} faces{glb_note}")
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
                print(f"{profile}\t{role}\t{e.repo_id}@{e.revision}\t{e.licence_line}\tlineage: {e.lineage_line}"
                      f"\t~{e.vram_gb:g} GB")
        print(f"note: background removal for image -> 3D: {catalog.BACKGROUND_REMOVAL}")
        return 0
    if args.action == "pull":
        from ..models_lock import pull

        if not args.target:
            raise StudioError("say which profile to pull: studio models pull standard|quality [--source DIR]")
        pull(args.target, settings.resolved_models_dir, source=Path(args.source) if args.source else None)
        return 0
    if args.action == "verify":
        from ..models_lock import verify

        problems = verify(settings.resolved_models_dir)
        if problems:
            raise StudioError(f"{len(problems)} model file(s) do not match the lock file; first: {problems[0]}")
        return 0
    missing = 0
    for st in catalog.status(settings.profile, settings.resolved_models_dir):
        state = f"ok {st.path}" if st.available else f"MISSING: {st.how_to_get}"
        missing += not st.available
        print(f"{st.entry.role}\t{st.entry.repo_id}\t{st.entry.licence}\t{state}")
    return 1 if missing else 0


def register(sub) -> None:
    from .. import catalog

    p = sub.add_parser("launch", help="start the studio in the browser")
    add_common(p)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("generate", help="text -> concept images")
    add_common(p)
    add_login(p)
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
    p.add_argument("--sketch", help="sketch image (scan, photo or drawing) -> image")
    p.add_argument("--sketch-mode", dest="sketch_mode", choices=["auto", "lines", "edges"], default="auto",
                   help="how to clean the sketch: lines (threshold), edges (Canny) or auto")
    p.add_argument("--init-image", dest="init_image", help="starting image for image -> image")
    p.add_argument("--strength", type=float,
                   help="0-1: how strongly the sketch holds (default 0.8) / how much the starting image changes (default 0.6)")
    p.add_argument("--adapter", action="append", metavar="NAME[:WEIGHT]",
                   help="LoRA adapter from the adapters folder; repeat for several")
    p.add_argument("--preset", metavar="CATEGORY", help="style preset: handbag, shoe, scarf, small-leather-goods, watch, jewellery, garment")
    p.add_argument("--scheduler", help="ddim, euler, euler_a, dpmpp_2m, unipc, pndm, heun, flow_euler (model permitting)")
    p.add_argument("--speed", choices=["draft", "final"], help="few steps to explore / full steps (overridden by --steps)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("mesh", help="image or prompt -> textured 3D mesh (GLB, OBJ, USDZ or ZIP)")
    add_common(p)
    add_login(p)
    p.add_argument("image", nargs="?", help="image file (PNG/JPEG/WEBP), or the sketch for triposg-scribble")
    p.add_argument("--prompt", help="text -> 3D instead of an image (Shap-E); with triposg-scribble: what the sketch shows")
    p.add_argument("--backend", help=f"{' | '.join(catalog.MESH_BACKENDS)} (see --list-backends)")
    p.add_argument("--list-backends", dest="list_backends", action="store_true", help="list 3D backends and exit")
    p.add_argument("--out", help="FILE.glb, FILE.obj, FILE.usdz or FILE.zip (matching --format)")
    p.add_argument("--format", choices=["glb", "obj", "usdz", "zip"], default="glb",
                   help="default glb; usdz is for AR Quick Look (needs usd-core)")
    p.add_argument("--topology", choices=["triangles", "quads"], default="triangles",
                   help="quads: Instant Meshes quad remesh for CAD/CLO handoff (kept in OBJ and USDZ; GLB is "
                        "triangles only)")
    p.add_argument("--resolution", type=int, help="working grid: " + "; ".join(
        f"{b.name}: {'relief columns' if b.resolution_option == 'resolution' else 'field grid'}"
        for b in catalog.MESH_BACKENDS.values()))
    p.add_argument("--size-cm", dest="size_cm", type=float, default=None,
                   help="largest extent in cm (default: the category's size, else 30)")
    p.add_argument("--category", help="product category for the default size (handbag, shoe, belt, ...)")
    p.add_argument("--face-budget", dest="face_budget", type=int, help="at most this many triangles")
    p.add_argument("--texture-size", dest="texture_size", type=int, help="texture atlas side in pixels")
    p.add_argument("--material", choices=["leather", "canvas", "metal", "silk"], help="PBR preset (default leather)")
    p.add_argument("--seed", type=int, help="seed of the generative backends (Shap-E, TripoSG) and of multi-view "
                                            "texturing")
    p.add_argument("--texture", metavar="MODE",
                   help="project (default: the concept image projected) | multiview (six MV-Adapter views painted "
                        "all round)")
    p.add_argument("--no-previews", dest="no_previews", action="store_true", help="skip thumbnail and turntable")
    p.add_argument("--project")
    p.set_defaults(func=cmd_mesh)

    p = sub.add_parser("models", help="the model catalogue")
    add_common(p)
    p.add_argument("action", choices=["list", "status", "pull", "verify"], nargs="?", default="list")
    p.add_argument("target", nargs="?", metavar="PROFILE", help="pull: the profile whose models (every role) to fetch")
    p.add_argument("--source", help="pull: a local mirror folder holding <repo id>/ trees instead of the Hub")
    p.set_defaults(func=cmd_models)
