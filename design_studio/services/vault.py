"""The encrypted vault in the studio: opening it, its adapters for generation, near-copy checks of
designs against it, and private LoRA training on its collections."""
from __future__ import annotations

import os
from ..access import AccessPolicy, Actor
from ..errors import InvalidRequest, NotFound, StudioError
from ..settings import Settings
from ..store import Design, Store, transaction
from .base import ProgressFn, translate_errors
from .models import ModelCache

PASSPHRASE_ENV = "STUDIO_VAULT_PASSPHRASE"
#: The name the vault's access log shows for reads the studio makes on its own (generation, index).
STUDIO_READER = "studio"


class NearCopyBlocked(StudioError):
    """A design flagged as a near-copy of a vault image cannot be shortlisted without an override."""


class VaultLocked(StudioError):
    """The vault cannot be opened: no passphrase given, or the wrong one."""


class VaultAdapterSource:
    """LoRA adapters kept encrypted in the vault, looked up by name for the generation path."""

    def __init__(self, vault, reader: str = STUDIO_READER):
        self.vault = vault
        self.reader = reader

    def names(self) -> list[str]:
        return sorted(self.vault.blobs(kind="adapter"))

    def load(self, name: str):
        """The adapter's weights (``pipelines.adapters.AdapterWeights``), decrypted in memory; the read is logged."""
        import hashlib

        from brand_guard.errors import BrandGuardError
        from pipelines.adapters import AdapterWeights
        from safetensors.torch import load as load_safetensors

        try:
            data = self.vault.read_blob(name, actor=self.reader, purpose="generation")
        except BrandGuardError as exc:
            raise NotFound(str(exc)) from None
        return AdapterWeights(name=name, sha256=hashlib.sha256(data).hexdigest(), state_dict=load_safetensors(data))


class VaultService:
    """Given settings, the store, the model cache (training) and the access policy."""

    def __init__(self, settings: Settings, store: Store, models: ModelCache, access: AccessPolicy):
        self.settings = settings
        self.store = store
        self.models = models
        self.access = access
        self._adapter_cache: tuple | None = None
        self._near_copy_cache: tuple | None = None

    # ------------------------------------------------------------------ opening
    def open(self, passphrase: str | None = None, *, create: bool = False):
        """The vault, unlocked by ``passphrase`` or ``STUDIO_VAULT_PASSPHRASE``; ``create`` makes a new one."""
        from brand_guard.errors import VaultError, WrongPassphrase
        from brand_guard.vault import KDF_FILE, VAULT_FILE, Vault, VaultKey

        passphrase = passphrase if passphrase is not None else os.environ.get(PASSPHRASE_ENV)
        if not passphrase:
            raise VaultLocked(f"no vault passphrase: set {PASSPHRASE_ENV} or type it when asked")
        root = self.settings.resolved_vault_dir
        try:
            if not (root / VAULT_FILE).exists():
                if not create:
                    raise VaultLocked(f"there is no vault at {root} yet; add images with `studio vault add DIR --collection NAME`")
                root.mkdir(parents=True, exist_ok=True)
                return Vault.create(root, VaultKey.from_passphrase(passphrase, root / KDF_FILE))
            return Vault.unlock(root, passphrase)
        except WrongPassphrase:
            raise VaultLocked(f"wrong vault passphrase for {root}; nothing was decrypted") from None
        except VaultError as exc:
            raise InvalidRequest(str(exc)) from None

    def open_for(self, actor: Actor | None, passphrase: str | None = None, *, create: bool = False):
        """The vault for an actor allowed to use it (``use_vault``); returns (vault, current actor)."""
        actor = self.access.check(actor, "use_vault")
        return self.open(passphrase, create=create), actor

    def exists(self) -> bool:
        from brand_guard.vault import VAULT_FILE

        return (self.settings.resolved_vault_dir / VAULT_FILE).exists()

    def adapter_source(self, passphrase: str | None = None) -> VaultAdapterSource:
        return VaultAdapterSource(self.open(passphrase))

    def adapter_source_if_unlocked(self) -> VaultAdapterSource | None:
        """The vault's adapters when a vault exists and its passphrase is set, else None (cached per vault state)."""
        if not self.exists() or not os.environ.get(PASSPHRASE_ENV):
            return None
        version = self._version()
        if self._adapter_cache is None or self._adapter_cache[0] != version:
            self._adapter_cache = (version, self.adapter_source())
        return self._adapter_cache[1]

    def _version(self) -> tuple:
        root = self.settings.resolved_vault_dir
        stats = []
        for path in sorted(root.glob("index.g*.enc")) + [root / "vault.json"]:
            if path.exists():
                st = path.stat()
                stats.append((path.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(stats)

    # ------------------------------------------------------------------ near-copy
    def near_copy_index(self, passphrase: str | None = None):
        """Perceptual-hash index of the vault, cached in memory and rebuilt when the vault changes."""
        from brand_guard.memorization import NearCopyIndex

        version = self._version()
        cached = self._near_copy_cache
        if cached and cached[0] == version and cached[1].threshold == self.settings.near_copy_threshold:
            return cached[1]
        vault = self.open(passphrase)
        index = NearCopyIndex.from_vault(vault, actor=STUDIO_READER, purpose="near-copy index",
                                         threshold=self.settings.near_copy_threshold)
        self._near_copy_cache = (self._version(), index)
        return index

    def check_near_copy(self, design_id: int, *, passphrase: str | None = None):
        """Compare a design's image (a mesh: its source image) with the vault; store the flag in its params."""
        from PIL import Image

        design = self.store.design(design_id)
        image_design = design
        while image_design.kind != "image" and image_design.parent_id is not None:
            image_design = self.store.design(image_design.parent_id)
        if image_design.kind != "image":
            raise InvalidRequest(f"design {design_id} has no image to compare with the vault")
        if not self.exists():
            return None
        index = self.near_copy_index(passphrase)
        with Image.open(self.store.file_path(image_design)) as im:
            im.load()
            result = index.check(im.convert("RGB"))
        with transaction(self.store.sessions) as s:
            row = s.get(Design, design.id)
            params = dict(row.params or {})
            flags = [f for f in params.get("flags", []) if f.get("kind") != "near_copy"]
            if result.flagged:
                flags.append({"kind": "near_copy", "vault_item": result.best_item_id, "distance": result.distance,
                              "threshold": result.threshold, "reason": result.reason()})
            params["flags"] = flags
            row.params = params
        return result

    # ------------------------------------------------------------------ private LoRA training
    def train_lora(self, collection: str, name: str, *, actor: Actor | None, steps: int = 200, rank: int = 4,
                   lr: float = 1e-4, caption_template: str = "a {collection} design", resolution: int | None = None,
                   seed: int = 0, passphrase: str | None = None, on_progress: ProgressFn | None = None):
        """Fine-tune a LoRA on a vault collection, decrypted in memory only; the adapter goes back into the vault."""
        actor = self.access.check(actor, "train_adapter")
        name = (name or "").strip()
        if not name or any(c in name for c in "/\\\0") or len(name) > 100:
            raise InvalidRequest(f"adapter name {name!r}; expected 1–100 characters without slashes")
        for label, value, lo, hi in (("steps", steps, 1, 100_000), ("rank", rank, 1, 256)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InvalidRequest(f"{label} {value!r}; expected a whole number from {lo} to {hi}")
        if not (isinstance(lr, (int, float)) and 0 < lr < 1):
            raise InvalidRequest(f"lr {lr!r}; expected a number between 0 and 1, e.g. 1e-4")
        try:
            caption = caption_template.format(collection=collection)
        except (KeyError, IndexError, ValueError) as exc:
            raise InvalidRequest(f"caption template {caption_template!r}: {exc}; use {{collection}} only") from None
        vault = self.open(passphrase)
        if not vault.list(collection):
            raise InvalidRequest(f"collection {collection!r} has no images in the vault; known: {sorted(vault.counts())}")
        _, path = self.models.require_path("concept")
        items = vault.read(collection, actor=actor.name, purpose="lora-training")  # decrypted in memory, logged
        from pipelines.lora import LoraTrainingConfig, load_training_components, train_lora

        device = self.models.device
        size = resolution or int(self.models.defaults["width"])
        config = LoraTrainingConfig(steps=steps, rank=rank, lr=float(lr), resolution=size, seed=seed, device=device)
        report = None
        if on_progress is not None:
            def report(step: int, total: int, loss: float) -> None:
                on_progress(step / total, f"step {step} of {total}, loss {loss:.4f}")
        with translate_errors():
            components = load_training_components(path, device=device)
            result = train_lora(components, [im for _, im in items], [caption] * len(items), config, on_step=report)
        del items
        vault.add_blob(name, result.safetensors_bytes, kind="adapter", actor=actor.name)
        return result

