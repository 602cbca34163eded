"""``studio verify | public-key | vault | train-lora | ledger | sample | release | drop``: the brand guard's commands."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import InvalidRequest, StudioError
from .common import add_common, add_login, login, studio_from

EXIT_TAMPERED = 1
EXIT_UNKNOWN = 3
NEW_PASSPHRASE_ENV = "STUDIO_VAULT_NEW_PASSPHRASE"


def guard_process() -> None:
    """Guarded mode for the CLI process: offline flags, loopback-only sockets (``STUDIO_GUARDED=0`` turns it off)."""
    from pydantic import ValidationError

    from ..settings import Settings

    try:
        guarded = Settings().guarded
    except ValidationError:
        guarded = True  # a bad setting is reported by the command itself; stay guarded meanwhile
    if guarded:
        from brand_guard.egress import install_guard

        install_guard()


def copy_manifest(source: Path, target: Path) -> None:
    """Copy the signed manifest of a stored file beside an exported copy (``target.manifest.json``)."""
    import shutil

    from brand_guard.provenance import manifest_path

    if manifest_path(source).exists():
        shutil.copyfile(manifest_path(source), manifest_path(target))


def _passphrase(prompt: str = "Vault passphrase: ", env: str = "STUDIO_VAULT_PASSPHRASE", confirm: bool = False) -> str:
    value = os.environ.get(env)
    if value:
        return value
    if not sys.stdin.isatty():
        raise StudioError(f"no vault passphrase: set {env} (no terminal to ask on)")
    import getpass

    value = getpass.getpass(prompt)
    if confirm and getpass.getpass("Again: ") != value:
        raise StudioError("the two passphrases differ; nothing was changed")
    return value


# ---------------------------------------------------------------- verify
def _trusted_keys(paths: list[str]) -> list[str]:
    from cryptography.hazmat.primitives import serialization

    from brand_guard.provenance import public_key_b64

    keys = []
    for raw in paths or []:
        path = Path(raw)
        if not path.is_file():
            raise InvalidRequest(f"--trust {raw!r}: no such key file")
        data = path.read_bytes()
        if b"BEGIN PUBLIC KEY" in data:
            keys.append(public_key_b64(serialization.load_pem_public_key(data)))
        else:
            keys.append(data.decode("ascii", "replace").strip())
    return keys


def cmd_verify(args) -> int:
    studio = studio_from(args)
    result = studio.verify_file(args.file, trust=_trusted_keys(args.trust))
    c2pa = studio.c2pa_status(args.file)
    out = {"status": result.status, "reason": result.reason, "record": result.record, "c2pa": c2pa}
    out.update(_bill_of_materials(result.record))
    print(json.dumps(out, indent=1, ensure_ascii=False))
    if out.get("restricted"):
        print(f"studio: RESTRICTED asset: {'; '.join(out['restricted_parts'])}", file=sys.stderr)
    if result.ok and c2pa["status"] == "invalid":
        # The studio's own checks pass but the embedded Content Credentials do not: the file was altered.
        print(f"studio: tampered: {c2pa['detail']}", file=sys.stderr)
        return EXIT_TAMPERED
    if result.ok:
        return 0
    print(f"studio: {result.status}: {result.reason}", file=sys.stderr)
    return EXIT_UNKNOWN if result.status == "unknown" else EXIT_TAMPERED


def _bill_of_materials(record) -> dict:
    """The signed record's bill of materials as printable lines, and whether a part restricts the asset."""
    from brand_guard.bom import bom_lines, bom_restrictions

    params = (record or {}).get("params") if isinstance(record, dict) else None
    bom = (params or {}).get("bom") if isinstance(params, dict) else None
    if not bom:
        return {"bill_of_materials": []}
    restrictions = bom_restrictions(bom)
    return {"bill_of_materials": bom_lines(bom), "restricted": bool(restrictions), "restricted_parts": restrictions}


def cmd_public_key(args) -> int:
    print(studio_from(args).keys.public_key_b64)
    return 0


# ---------------------------------------------------------------- vault
def cmd_vault(args) -> int:
    from brand_guard.errors import BrandGuardError
    from brand_guard.vault import VaultKey

    studio = studio_from(args)
    vault, actor = studio.vault.open_for(login(args, studio), _passphrase(), create=args.action == "add")
    who = actor.name
    try:
        if args.action == "add":
            if not args.collection:
                raise InvalidRequest("vault add needs --collection NAME")
            if not Path(args.target or "").exists():
                raise InvalidRequest(f"vault add: {args.target!r} is not a file or folder")
            report = vault.add_images(args.target, args.collection, who, strict=False)
            print(f"added {len(report.added)}, duplicates {len(report.duplicates)}, rejected {len(report.rejected)}")
            for path, reason in report.rejected:
                print(f"rejected\t{path}\t{reason}", file=sys.stderr)
            return 0 if not report.rejected else 1
        if args.action == "list":
            for item in vault.list(args.collection):
                print(f"{item.item_id}\t{item.collection}\t{item.source_name}\t{item.width}x{item.height}\t{item.added_at}")
            for name, meta in sorted(vault.blobs().items()):
                print(f"{meta['kind']}\t{name}\t{meta['size']} bytes\t{meta['added_at']}")
            return 0
        if args.action == "counts":
            for collection, count in vault.counts().items():
                print(f"{collection}\t{count}")
            return 0
        if args.action == "remove":
            if not args.target:
                raise InvalidRequest("vault remove needs an item ID (see `studio vault list`)")
            vault.remove(args.target, who)
            print(f"removed {args.target}")
            return 0
        if args.action == "rotate-key":
            new = _passphrase("New vault passphrase: ", NEW_PASSPHRASE_ENV, confirm=True)
            vault.rotate_key(VaultKey.from_passphrase(new, None), who)
            print("vault re-encrypted under the new passphrase")
            return 0
        if args.action == "log":
            for entry in vault.access_log()[-args.limit:]:
                print(f"{entry['ts']}\t{entry['actor']}\t{entry['action']}\t{entry.get('purpose') or ''}\t"
                      f"{len(entry['items'])} items\t{entry['outcome']}")
            return 0
    except BrandGuardError as exc:
        raise StudioError(str(exc)) from None
    raise InvalidRequest(f"unknown vault action {args.action!r}")


def cmd_train_lora(args) -> int:
    studio = studio_from(args)

    def progress(fraction: float, message: str) -> None:
        print(message, file=sys.stderr)

    result = studio.train_lora(args.collection, args.name, steps=args.steps, rank=args.rank, lr=args.lr,
                               caption_template=args.caption, resolution=args.resolution, seed=args.seed,
                               actor=login(args, studio), passphrase=_passphrase(),
                               on_progress=progress)
    print(f"adapter {args.name!r} saved encrypted in the vault: {result.images} images, {len(result.losses)} steps, "
          f"loss {result.losses[0]:.4f} -> {result.losses[-1]:.4f}")
    return 0


# ---------------------------------------------------------------- ledger
def cmd_ledger(args) -> int:
    studio = studio_from(args)
    if args.action == "verify":
        check = studio.verify_ledger()
        if not check.chain_ok:
            print(f"studio: ledger broken at seq {check.first_bad_seq}: {check.chain_reason}", file=sys.stderr)
            return EXIT_TAMPERED
        if check.problems:
            for problem in check.problems:
                print(f"studio: {problem}", file=sys.stderr)
            print(f"studio: ledger chain intact but {len(check.problems)} design record problem(s)", file=sys.stderr)
            return EXIT_TAMPERED
        print(f"ledger intact: {check.chain_reason}; every design has its design_created event and signed manifest")
        return 0
    if args.action == "report":
        text = studio.ratio_report(args.collection, args.season, args.format)
        if args.out:
            from ..store import atomic_write

            atomic_write(Path(args.out), text.encode("utf-8"))
            print(args.out)
        else:
            sys.stdout.write(text)
        return 0
    if args.action == "export":
        if not args.file:
            raise InvalidRequest("ledger export needs a CSV file path")
        count = studio.ledger.export_csv(Path(args.file))
        print(f"{count} entries -> {args.file}")
        return 0
    raise InvalidRequest(f"unknown ledger action {args.action!r}")


def cmd_baseline(args) -> int:
    studio = studio_from(args)
    actor = login(args, studio)
    if args.baseline_action == "import":
        if not args.csv:
            raise InvalidRequest("ledger baseline import needs a CSV file")
        count = studio.import_baselines(args.csv, actor=actor)
        print(f"{count} baselines imported")
        return 0
    if not args.collection or args.samples_per_style is None or args.days_to_approval is None:
        raise InvalidRequest("baseline add needs --collection, --samples-per-style and --days-to-approval")
    studio.set_baseline(args.collection, args.season or "", args.samples_per_style, args.days_to_approval,
                        actor=actor)
    print(f"baseline for {args.collection} {args.season or '(all seasons)'} saved")
    return 0


def cmd_sample(args) -> int:
    studio = studio_from(args)
    actor = login(args, studio)
    if args.action == "order":
        sample = studio.order_sample(args.design, args.supplier, args.material, args.cost, args.currency,
                                     actor=actor, note=args.note or "")
        print(f"sample {sample.id} ordered for design {args.design}: {sample.supplier}, {sample.material}, "
              f"{sample.cost} {sample.currency}")
    elif args.action == "receive":
        sample = studio.receive_sample(args.sample, design_id=args.design, actor=actor, note=args.note or "")
        print(f"sample {sample.id} received")
    else:
        sample = studio.reject_sample(args.sample, design_id=args.design, actor=actor, reason=args.note or "")
        print(f"sample {sample.id} rejected")
    return 0


def cmd_release(args) -> int:
    studio = studio_from(args)
    entry = studio.release_to_production(args.design, args.sku, actor=login(args, studio))
    print(f"design {args.design} released to production as {args.sku} (ledger seq {entry.seq})")
    return 0


def cmd_drop(args) -> int:
    studio = studio_from(args)
    entry = studio.drop_style(args.design, actor=login(args, studio), reason=args.reason or "")
    print(f"style of design {args.design} dropped (ledger seq {entry.seq})")
    return 0


def cmd_trace(args) -> int:
    studio = studio_from(args)
    results = [studio.tracer.trace(path) for path in args.files]  # any unreadable file: exit 2 before printing
    for result in results:
        print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else result.line())
    return 0 if all(r.traced for r in results) else EXIT_UNKNOWN


def register(sub) -> None:
    p = sub.add_parser("trace", help="which design a leaked image (or GLB / USDZ) comes from, by its watermark: "
                                     "exit 0 all traced, 3 any without a mark from this studio, 2 bad input")
    add_common(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per file")
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("verify", help="check a PNG/GLB's provenance: valid (exit 0), tampered (1), unknown (3)")
    add_common(p)
    p.add_argument("file")
    p.add_argument("--trust", action="append", default=[], metavar="KEYFILE",
                   help="also trust this public key (base64 text or PEM); repeatable")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("public-key", help="print the studio's public signing key (base64) for others to --trust")
    add_common(p)
    p.set_defaults(func=cmd_public_key)

    p = sub.add_parser("vault", help="the encrypted archive: add | list | counts | remove | rotate-key | log")
    add_common(p)
    p.add_argument("action", choices=["add", "list", "counts", "remove", "rotate-key", "log"])
    p.add_argument("target", nargs="?", help="add: DIR or image file; remove: item ID")
    p.add_argument("--collection", help="collection name (add: required; list: filter)")
    p.add_argument("--limit", type=int, default=50, help="log: last N entries (default 50)")
    add_login(p)
    p.set_defaults(func=cmd_vault)

    p = sub.add_parser("train-lora", help="fine-tune a private LoRA on a vault collection (stays in the vault)")
    add_common(p)
    p.add_argument("--collection", required=True)
    p.add_argument("--name", required=True, help="adapter name in the vault")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--caption", default="a {collection} design", help="caption template; {collection} is replaced")
    p.add_argument("--resolution", type=int, help="training side in pixels (default: the profile's width)")
    p.add_argument("--seed", type=int, default=0)
    add_login(p)
    p.set_defaults(func=cmd_train_lora)

    ledger = sub.add_parser("ledger", help="the decision ledger: verify | report | export | baseline")
    lsub = ledger.add_subparsers(dest="action", required=True)
    p = lsub.add_parser("verify", help="exit 0 when the chain, signed head and every design's event and manifest "
                                       "are intact; else name the first bad entry and each design at fault")
    add_common(p)
    p.set_defaults(func=cmd_ledger)
    p = lsub.add_parser("report", help="ratios per collection and season vs baseline")
    add_common(p)
    p.add_argument("--collection")
    p.add_argument("--season")
    p.add_argument("--format", choices=["csv", "json", "html"], default="csv")
    p.add_argument("--out", help="write to FILE instead of stdout")
    p.set_defaults(func=cmd_ledger)
    p = lsub.add_parser("export", help="every ledger entry as CSV")
    add_common(p)
    p.add_argument("file", help="CSV file to write")
    p.set_defaults(func=cmd_ledger)
    p = lsub.add_parser("baseline", help="pre-studio baselines per collection: add | import CSV")
    add_common(p)
    p.add_argument("baseline_action", choices=["add", "import"])
    p.add_argument("csv", nargs="?", help="import: CSV with collection,season,samples_per_style,days_to_approval")
    p.add_argument("--collection")
    p.add_argument("--season", default="")
    p.add_argument("--samples-per-style", dest="samples_per_style", type=float)
    p.add_argument("--days-to-approval", dest="days_to_approval", type=float)
    add_login(p)
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("sample", help="physical samples: order | receive | reject")
    add_common(p)
    p.add_argument("action", choices=["order", "receive", "reject"])
    p.add_argument("design", type=int, help="design id")
    p.add_argument("--sample", type=int, help="receive/reject: sample id (default: the design's open order)")
    p.add_argument("--supplier")
    p.add_argument("--material")
    p.add_argument("--cost")
    p.add_argument("--currency", default="EUR")
    p.add_argument("--note", help="note, or the reason of a rejection")
    add_login(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("release", help="release a style to production under a SKU (creative director/admin)")
    add_common(p)
    p.add_argument("design", type=int)
    p.add_argument("--sku", required=True)
    add_login(p)
    p.set_defaults(func=cmd_release)

    p = sub.add_parser("drop", help="drop a style (creative director/admin)")
    add_common(p)
    p.add_argument("design", type=int)
    p.add_argument("--reason", default="")
    add_login(p)
    p.set_defaults(func=cmd_drop)
