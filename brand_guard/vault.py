"""The house archive at rest: images and adapters encrypted with AES-256-GCM, every read logged.
Decrypted bytes exist only in memory; `Vault.read` and `Vault.read_blob` are the only ways out."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import secrets
import stat
import uuid
import warnings
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from PIL import Image, ImageOps

from .errors import InsecureKeyFile, InvalidImage, TamperedFile, VaultError, WrongPassphrase
from .fsutil import append_line, atomic_write_bytes, fsync_dir

FORMAT = "brand-guard-vault/1"
VAULT_FILE = "vault.json"
KDF_FILE = "kdf.json"
ACCESS_LOG = "access.jsonl"
MAGIC = b"BGV1"
NONCE_BYTES = 12
CHECK_PLAINTEXT = b"brand_guard vault check token v1"
ACCEPTED_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000; larger files are treated as decompression bombs
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def pixel_sha256(image: Image.Image) -> str:
    """SHA-256 over mode, size and decoded pixel bytes: equal pixels give equal hashes whatever the file format."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode("ascii"))
    digest.update(image.tobytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class VaultKey:
    """A 256-bit vault key. `kdf` holds the scrypt salt and parameters when it came from a passphrase."""

    key: bytes = field(repr=False)
    kdf: dict | None = None

    def __post_init__(self) -> None:
        if len(self.key) != 32:
            raise VaultError(f"vault key length {len(self.key)} bytes; expected 32 bytes (AES-256)")

    @classmethod
    def from_passphrase(
        cls, passphrase: str, salt_path: Path | str | None, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
    ) -> "VaultKey":
        """Derive a key with scrypt. The salt and parameters are read from `salt_path`, or created there
        when it does not exist (`salt_path=None`: a fresh salt kept only in the key, e.g. for `rotate_key`)."""
        if not isinstance(passphrase, str) or not passphrase:
            raise VaultError("passphrase is empty; expected a non-empty string")
        kdf: dict | None = None
        if salt_path is not None:
            salt_path = Path(salt_path)
            if salt_path.exists():
                try:
                    kdf = json.loads(salt_path.read_text("utf-8"))
                    bytes.fromhex(kdf["salt"])
                    kdf = {"alg": "scrypt", "salt": kdf["salt"], "n": int(kdf["n"]), "r": int(kdf["r"]), "p": int(kdf["p"])}
                except (ValueError, KeyError, TypeError) as exc:
                    raise VaultError(f"salt file {salt_path} is not valid scrypt parameters JSON: {exc}") from exc
        if kdf is None:
            kdf = {"alg": "scrypt", "salt": secrets.token_bytes(16).hex(), "n": n, "r": r, "p": p}
            if salt_path is not None:
                atomic_write_bytes(salt_path, json.dumps(kdf, sort_keys=True).encode("utf-8"))
        key = Scrypt(salt=bytes.fromhex(kdf["salt"]), length=32, n=kdf["n"], r=kdf["r"], p=kdf["p"]).derive(
            passphrase.encode("utf-8")
        )
        return cls(key=key, kdf=kdf)

    @classmethod
    def from_file(cls, path: Path | str) -> "VaultKey":
        """Read a key file (32 raw bytes or 64 hex characters); refuse it if group/other may read it."""
        path = Path(path)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise VaultError(f"key file {path} does not exist") from exc
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise InsecureKeyFile(
                f"key file {path} has permissions {mode:04o}; expected 0600 or narrower (chmod 600 {path})"
            )
        raw = path.read_bytes()
        text = raw.strip()
        if len(raw) == 32:
            key = raw
        elif len(text) == 64:
            try:
                key = bytes.fromhex(text.decode("ascii"))
            except ValueError as exc:
                raise VaultError(f"key file {path} is not 64 hex characters") from exc
        else:
            raise VaultError(f"key file {path} holds {len(raw)} bytes; expected 32 raw bytes or 64 hex characters")
        return cls(key=key)

    @classmethod
    def generate_file(cls, path: Path | str) -> "VaultKey":
        """Create a new random key file with 0600 permissions and return its key."""
        path = Path(path)
        if path.exists():
            raise VaultError(f"key file {path} already exists; refusing to overwrite a key")
        key = secrets.token_bytes(32)
        atomic_write_bytes(path, key.hex().encode("ascii") + b"\n", mode=0o600)
        return cls(key=key)


def _encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes, what: str) -> bytes:
    if len(blob) < len(MAGIC) + NONCE_BYTES + 16 or not blob.startswith(MAGIC):
        raise TamperedFile(f"{what}: not a brand-guard ciphertext (bad header or {len(blob)} bytes too short)")
    nonce = blob[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
    try:
        return AESGCM(key).decrypt(nonce, blob[len(MAGIC) + NONCE_BYTES :], aad)
    except InvalidTag as exc:
        raise TamperedFile(f"{what}: authentication failed; the file was modified, swapped or truncated") from exc


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class VaultItem:
    """One image in the vault (metadata only; pixels come through `Vault.read`)."""

    item_id: str
    collection: str
    source_name: str
    width: int
    height: int
    mode: str
    pixel_sha256: str
    added_at: str
    added_by: str


@dataclass
class AddReport:
    """What `add_images` did: new item ids, duplicates (path, existing id), rejected (path, reason)."""

    added: list[str] = field(default_factory=list)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)


def _validate_image(path: Path, max_pixels: int) -> Image.Image:
    """Open, fully decode and normalise an image; raise InvalidImage naming the file and the reason."""
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = max_pixels
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                fmt = probe.format
                if fmt not in ACCEPTED_FORMATS:
                    raise InvalidImage(f"image {path}: format {fmt!r}; accepted formats are PNG, JPEG, WEBP")
                probe.verify()
            with Image.open(path) as im:
                im.load()
                im = ImageOps.exif_transpose(im)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image {path}: too many pixels (decompression bomb guard, limit {max_pixels}): {exc}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"image {path}: cannot be decoded completely (truncated or corrupt): {exc}") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    if im.mode not in ("RGB", "RGBA", "L", "LA"):
        has_alpha = im.mode in ("PA", "La") or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    # A fresh image carries no EXIF/GPS/ICC/text: only mode, size and pixels survive.
    return Image.frombytes(im.mode, im.size, im.tobytes())


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------- vault


class Vault:
    """An encrypted store of training images and adapters under one directory.

    Layout: `vault.json` (format, key generation, check token, kdf params), `kdf.json` (scrypt salt),
    `index.g<N>.enc` (encrypted metadata), `items/<id>.g<N>.enc`, `blobs/<id>.g<N>.enc`, `access.jsonl`."""

    def __init__(self, root: Path | str, key: VaultKey, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        self.root = Path(root)
        self._key = key
        self.max_pixels = max_pixels
        meta_path = self.root / VAULT_FILE
        if not meta_path.exists():
            raise VaultError(f"vault root {self.root} has no {VAULT_FILE}; create it with Vault.create(root, key)")
        self._meta = json.loads(meta_path.read_text("utf-8"))
        if self._meta.get("format") != FORMAT:
            raise VaultError(f"{meta_path}: format {self._meta.get('format')!r}; expected {FORMAT!r}")
        token = base64.b64decode(self._meta["check"])
        try:
            plain = _decrypt(key.key, token, b"check", "vault check token")
        except TamperedFile as exc:
            raise WrongPassphrase(
                f"the key does not open the vault at {self.root}; check the passphrase or key file"
            ) from exc
        if plain != CHECK_PLAINTEXT:
            raise WrongPassphrase(f"the key does not open the vault at {self.root}")
        self._gen = int(self._meta["generation"])
        self._cleanup_other_generations()
        self._index = self._load_index()

    # ---- construction

    @classmethod
    def create(cls, root: Path | str, key: VaultKey, **kwargs) -> "Vault":
        """Create an empty vault in `root` (which must not already hold one)."""
        root = Path(root)
        if (root / VAULT_FILE).exists():
            raise VaultError(f"vault root {root} already holds a vault; use Vault.open")
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)
        (root / "items").mkdir(mode=0o700, exist_ok=True)
        (root / "blobs").mkdir(mode=0o700, exist_ok=True)
        index = {"items": {}, "blobs": {}}
        atomic_write_bytes(root / "index.g1.enc", _encrypt(key.key, json.dumps(index).encode(), b"index:1"))
        cls._write_meta(root, key, generation=1)
        return cls(root, key, **kwargs)

    @classmethod
    def open(cls, root: Path | str, key: VaultKey, **kwargs) -> "Vault":
        """Open an existing vault; raise WrongPassphrase if `key` does not match."""
        return cls(root, key, **kwargs)

    @classmethod
    def unlock(cls, root: Path | str, passphrase: str, **kwargs) -> "Vault":
        """Open a passphrase vault: repair `kdf.json` from `vault.json` if a rotation was cut short, derive, open."""
        root = Path(root)
        meta = json.loads((root / VAULT_FILE).read_text("utf-8"))
        if meta.get("kdf"):
            kdf_path = root / KDF_FILE
            current = json.loads(kdf_path.read_text("utf-8")) if kdf_path.exists() else None
            if current != meta["kdf"]:
                atomic_write_bytes(kdf_path, json.dumps(meta["kdf"], sort_keys=True).encode("utf-8"))
        return cls(root, VaultKey.from_passphrase(passphrase, root / KDF_FILE), **kwargs)

    @staticmethod
    def _write_meta(root: Path, key: VaultKey, generation: int) -> None:
        meta = {
            "format": FORMAT,
            "generation": generation,
            "check": base64.b64encode(_encrypt(key.key, CHECK_PLAINTEXT, b"check")).decode("ascii"),
            "kdf": key.kdf,
        }
        atomic_write_bytes(root / VAULT_FILE, json.dumps(meta, sort_keys=True, indent=1).encode("utf-8"))

    # ---- internal storage

    def _item_path(self, item_id: str, gen: int | None = None) -> Path:
        return self.root / "items" / f"{item_id}.g{gen or self._gen}.enc"

    def _blob_path(self, blob_id: str, gen: int | None = None) -> Path:
        return self.root / "blobs" / f"{blob_id}.g{gen or self._gen}.enc"

    def _load_index(self) -> dict:
        path = self.root / f"index.g{self._gen}.enc"
        if not path.exists():
            raise VaultError(f"vault index {path} is missing")
        return json.loads(_decrypt(self._key.key, path.read_bytes(), f"index:{self._gen}".encode(), str(path)))

    def _save_index(self, index: dict | None = None, key: VaultKey | None = None, gen: int | None = None) -> None:
        gen = gen or self._gen
        data = json.dumps(index if index is not None else self._index, sort_keys=True).encode("utf-8")
        atomic_write_bytes(self.root / f"index.g{gen}.enc", _encrypt((key or self._key).key, data, f"index:{gen}".encode()))

    def _cleanup_other_generations(self) -> None:
        """Remove files of an unfinished or finished rotation that belong to another key generation."""
        suffix = f".g{self._gen}.enc"
        for folder in (self.root, self.root / "items", self.root / "blobs"):
            if not folder.is_dir():
                continue
            for path in folder.glob("*.g*.enc"):
                if not path.name.endswith(suffix):
                    path.unlink()
            for path in folder.glob(".*.tmp"):
                path.unlink()

    def _log(self, actor: str, action: str, purpose: str | None, items: Sequence[str], outcome: str) -> None:
        entry = {"ts": _now(), "actor": actor, "action": action, "purpose": purpose, "items": list(items), "outcome": outcome}
        append_line(self.root / ACCESS_LOG, json.dumps(entry, sort_keys=True, ensure_ascii=False))

    @staticmethod
    def _require(name: str, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise VaultError(f"{name} is {value!r}; expected a non-empty string")

    # ---- images

    def add_images(
        self, paths_or_dir: Path | str | Iterable[Path | str], collection: str, actor: str, *, strict: bool = True
    ) -> AddReport:
        """Validate, strip metadata, de-duplicate and encrypt images into `collection`.

        All files are checked before any is written; with `strict` a bad file raises InvalidImage and
        nothing is added, otherwise it is listed in `AddReport.rejected`."""
        self._require("collection", collection)
        self._require("actor", actor)
        if isinstance(paths_or_dir, (str, Path)) and Path(paths_or_dir).is_dir():
            paths = sorted(p for p in Path(paths_or_dir).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif isinstance(paths_or_dir, (str, Path)):
            paths = [Path(paths_or_dir)]
        else:
            paths = [Path(p) for p in paths_or_dir]
        report = AddReport()
        accepted: list[tuple[Path, Image.Image]] = []
        for path in paths:
            try:
                accepted.append((path, _validate_image(path, self.max_pixels)))
            except InvalidImage as exc:
                if strict:
                    raise
                report.rejected.append((str(path), str(exc)))
        known = {meta["pixel_sha256"]: item_id for item_id, meta in self._index["items"].items()}
        for path, image in accepted:
            digest = pixel_sha256(image)
            if digest in known:
                report.duplicates.append((str(path), known[digest]))
                continue
            item_id = uuid.uuid4().hex
            atomic_write_bytes(self._item_path(item_id), _encrypt(self._key.key, _png_bytes(image), item_id.encode("ascii")))
            self._index["items"][item_id] = asdict(
                VaultItem(item_id, collection, path.name, image.width, image.height, image.mode, digest, _now(), actor)
            )
            known[digest] = item_id
            report.added.append(item_id)
        if report.added:
            self._save_index()
        self._log(actor, "add", None, report.added, "ok")
        return report

    def list(self, collection: str | None = None) -> list[VaultItem]:
        """Items (metadata only), optionally of one collection, oldest first."""
        items = [VaultItem(**meta) for meta in self._index["items"].values()]
        if collection is not None:
            items = [item for item in items if item.collection == collection]
        return sorted(items, key=lambda item: (item.added_at, item.item_id))

    def counts(self) -> dict[str, int]:
        """Number of images per collection."""
        out: dict[str, int] = {}
        for meta in self._index["items"].values():
            out[meta["collection"]] = out.get(meta["collection"], 0) + 1
        return dict(sorted(out.items()))

    def remove(self, item_id: str, actor: str) -> None:
        """Delete one image and its ciphertext."""
        self._require("actor", actor)
        if item_id not in self._index["items"]:
            raise VaultError(f"item_id {item_id!r} is not in the vault; see Vault.list() for ids")
        del self._index["items"][item_id]
        self._save_index()
        self._item_path(item_id).unlink(missing_ok=True)
        fsync_dir(self.root / "items")
        self._log(actor, "remove", None, [item_id], "ok")

    def read(self, item_ids_or_collection: str | Sequence[str], actor: str, purpose: str) -> list[tuple[str, Image.Image]]:
        """Decrypt images into memory: a collection name or a list of item ids. Every call is logged."""
        self._require("actor", actor)
        self._require("purpose", purpose)
        if isinstance(item_ids_or_collection, str):
            ids = [item.item_id for item in self.list(item_ids_or_collection)]
            if not ids and item_ids_or_collection in self._index["items"]:
                ids = [item_ids_or_collection]
        else:
            ids = list(item_ids_or_collection)
        unknown = [i for i in ids if i not in self._index["items"]]
        if unknown:
            self._log(actor, "read", purpose, ids, "refused: unknown ids")
            raise VaultError(f"item ids {unknown[:5]} are not in the vault; see Vault.list() for ids")
        out: list[tuple[str, Image.Image]] = []
        outcome = "error"
        try:
            for item_id in ids:
                path = self._item_path(item_id)
                plain = _decrypt(self._key.key, path.read_bytes(), item_id.encode("ascii"), f"vault item {item_id}")
                with Image.open(io.BytesIO(plain)) as im:
                    im.load()
                    out.append((item_id, im.copy()))
            outcome = "ok"
        except TamperedFile:
            outcome = "tampered"
            raise
        finally:
            self._log(actor, "read", purpose, ids, outcome)
        return out

    # ---- blobs (adapters)

    def add_blob(self, name: str, data: bytes, kind: str = "adapter", *, actor: str) -> None:
        """Store `data` (e.g. LoRA safetensors bytes) encrypted under `name`, replacing an older blob of that name."""
        self._require("name", name)
        self._require("actor", actor)
        if not isinstance(data, (bytes, bytearray)):
            raise VaultError(f"blob {name!r}: data is {type(data).__name__}; expected bytes")
        old = self._index["blobs"].get(name)
        blob_id = uuid.uuid4().hex
        aad = f"{blob_id}:{name}".encode("utf-8")
        atomic_write_bytes(self._blob_path(blob_id), _encrypt(self._key.key, bytes(data), aad))
        self._index["blobs"][name] = {
            "blob_id": blob_id, "kind": kind, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "added_at": _now(), "added_by": actor,
        }
        self._save_index()
        if old:
            self._blob_path(old["blob_id"]).unlink(missing_ok=True)
        self._log(actor, "add_blob", None, [name], "ok")

    def blobs(self, kind: str | None = None) -> dict[str, dict]:
        """Blob metadata by name, optionally of one kind."""
        return {n: dict(m) for n, m in self._index["blobs"].items() if kind is None or m["kind"] == kind}

    def read_blob(self, name: str, actor: str, purpose: str) -> bytes:
        """Decrypt one blob into memory. Logged like `read`."""
        self._require("actor", actor)
        self._require("purpose", purpose)
        meta = self._index["blobs"].get(name)
        if meta is None:
            self._log(actor, "read_blob", purpose, [name], "refused: unknown name")
            raise VaultError(f"blob name {name!r} is not in the vault; known: {sorted(self._index['blobs'])}")
        outcome = "error"
        try:
            aad = f"{meta['blob_id']}:{name}".encode("utf-8")
            data = _decrypt(self._key.key, self._blob_path(meta["blob_id"]).read_bytes(), aad, f"vault blob {name!r}")
            if hashlib.sha256(data).hexdigest() != meta["sha256"]:
                raise TamperedFile(f"vault blob {name!r}: content hash differs from the index")
            outcome = "ok"
            return data
        except TamperedFile:
            outcome = "tampered"
            raise
        finally:
            self._log(actor, "read_blob", purpose, [name], outcome)

    def remove_blob(self, name: str, actor: str) -> None:
        """Delete one blob."""
        meta = self._index["blobs"].pop(name, None)
        if meta is None:
            raise VaultError(f"blob name {name!r} is not in the vault")
        self._save_index()
        self._blob_path(meta["blob_id"]).unlink(missing_ok=True)
        self._log(actor, "remove_blob", None, [name], "ok")

    # ---- key rotation

    def rotate_key(self, new_key: VaultKey, actor: str = "admin") -> None:
        """Re-encrypt everything under `new_key`.

        New-generation files are written first; `vault.json` (new check token) is replaced last as the
        commit point; old-generation files are removed after. A crash at any step leaves one complete
        generation that the matching key opens; leftovers are cleaned on the next open."""
        new_gen = self._gen + 1
        for item_id in self._index["items"]:
            plain = _decrypt(self._key.key, self._item_path(item_id).read_bytes(), item_id.encode("ascii"), f"vault item {item_id}")
            atomic_write_bytes(self._item_path(item_id, new_gen), _encrypt(new_key.key, plain, item_id.encode("ascii")))
        for name, meta in self._index["blobs"].items():
            aad = f"{meta['blob_id']}:{name}".encode("utf-8")
            plain = _decrypt(self._key.key, self._blob_path(meta["blob_id"]).read_bytes(), aad, f"vault blob {name!r}")
            atomic_write_bytes(self._blob_path(meta["blob_id"], new_gen), _encrypt(new_key.key, plain, aad))
        self._save_index(key=new_key, gen=new_gen)
        self._write_meta(self.root, new_key, new_gen)  # commit point
        if new_key.kdf:
            atomic_write_bytes(self.root / KDF_FILE, json.dumps(new_key.kdf, sort_keys=True).encode("utf-8"))
        else:
            (self.root / KDF_FILE).unlink(missing_ok=True)
        self._key, self._gen = new_key, new_gen
        self._cleanup_other_generations()
        self._log(actor, "rotate_key", None, [], "ok")

    def access_log(self) -> list[dict]:
        """Entries of the access log, oldest first."""
        path = self.root / ACCESS_LOG
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
