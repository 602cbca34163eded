"""Near-copy check of generated designs against the vault (IP leak guard): perceptual hashes
(pHash + dHash, 128 bits) compared with vectorised popcounts, plus an optional embedding cosine."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import imagehash
import numpy as np
from PIL import Image

from .errors import BrandGuardError

DEFAULT_THRESHOLD = 24  # of 128 bits; mild resize/JPEG/colour shifts stay under ~12, unrelated images sit near 64
DEFAULT_SIMILARITY = 0.92


def image_hash_words(image: Image.Image) -> np.ndarray:
    """pHash and dHash of `image` as two uint64 words."""
    gray = image.convert("L")
    bits = np.concatenate([imagehash.phash(gray).hash.ravel(), imagehash.dhash(gray).hash.ravel()]).astype(np.uint8)
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8").astype(np.uint64)


@dataclass(frozen=True)
class NearCopyResult:
    """Outcome of one check; `distance` is the Hamming distance (0–128) to the closest vault item."""

    flagged: bool
    best_item_id: str | None
    distance: int | None
    similarity: float | None
    threshold: int

    def reason(self) -> str:
        """One sentence for the review screen."""
        if not self.flagged:
            return "no near-copy of a vault image found"
        sim = f", embedding similarity {self.similarity:.3f}" if self.similarity is not None else ""
        return f"near-copy of vault item {self.best_item_id}: hash distance {self.distance}/128 (threshold {self.threshold}){sim}"


class NearCopyIndex:
    """Perceptual hashes (and optional embeddings) of vault images, checked in one numpy pass."""

    def __init__(
        self,
        threshold: int = DEFAULT_THRESHOLD,
        embed: Callable[[Image.Image], np.ndarray] | None = None,
        similarity_threshold: float = DEFAULT_SIMILARITY,
    ) -> None:
        if not 0 <= threshold <= 128:
            raise BrandGuardError(f"threshold {threshold}; expected 0..128 bits")
        self.threshold = threshold
        self.embed = embed
        self.similarity_threshold = similarity_threshold
        self._ids: list[str] = []
        self._words = np.zeros((0, 2), dtype=np.uint64)
        self._vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self._ids)

    @classmethod
    def from_vault(cls, vault, actor: str, collection: str | None = None, purpose: str = "near-copy index", **kwargs) -> "NearCopyIndex":
        """Build from vault images (read through `Vault.read`, so the read is logged)."""
        index = cls(**kwargs)
        ids = [item.item_id for item in vault.list(collection)]
        if ids:
            index.add_many(vault.read(ids, actor=actor, purpose=purpose))
        return index

    def add(self, item_id: str, image: Image.Image) -> None:
        """Index one image."""
        self.add_many([(item_id, image)])

    def add_many(self, items: Iterable[tuple[str, Image.Image]]) -> None:
        """Index several images."""
        ids, words, vecs = [], [], []
        for item_id, image in items:
            ids.append(item_id)
            words.append(image_hash_words(image))
            if self.embed is not None:
                vecs.append(_unit(np.asarray(self.embed(image), dtype=np.float32).ravel()))
        if not ids:
            return
        self.add_hashes(ids, np.stack(words))
        if self.embed is not None:
            stacked = np.stack(vecs)
            self._vectors = stacked if self._vectors is None else np.concatenate([self._vectors, stacked])

    def add_hashes(self, item_ids: Sequence[str], words: np.ndarray) -> None:
        """Index precomputed hashes: `words` of shape (n, 2) uint64 as from `image_hash_words`."""
        words = np.asarray(words, dtype=np.uint64).reshape(-1, 2)
        if len(item_ids) != len(words):
            raise BrandGuardError(f"{len(item_ids)} item ids for {len(words)} hashes; expected equal counts")
        self._ids.extend(item_ids)
        self._words = np.concatenate([self._words, words])

    def distances(self, words: np.ndarray) -> np.ndarray:
        """Hamming distances (0–128) from one hash pair to every indexed item."""
        return np.bitwise_count(self._words ^ np.asarray(words, dtype=np.uint64)).sum(axis=1)

    def check(self, image: Image.Image) -> NearCopyResult:
        """Is `image` a near-copy of an indexed vault image?"""
        if not self._ids:
            return NearCopyResult(False, None, None, None, self.threshold)
        dist = self.distances(image_hash_words(image))
        best = int(np.argmin(dist))
        best_dist = int(dist[best])
        flagged = best_dist <= self.threshold
        similarity = None
        if self.embed is not None and self._vectors is not None:
            sims = self._vectors @ _unit(np.asarray(self.embed(image), dtype=np.float32).ravel())
            best_sim = int(np.argmax(sims))
            similarity = float(sims[best_sim])
            if similarity >= self.similarity_threshold and not flagged:
                flagged, best, best_dist = True, best_sim, int(dist[best_sim])
        return NearCopyResult(flagged, self._ids[best], best_dist, similarity, self.threshold)

    def to_bytes(self) -> bytes:
        """Serialise ids and hashes (e.g. to keep in the vault as a blob; embeddings are not kept)."""
        buf = io.BytesIO()
        np.savez(buf, ids=np.array(self._ids, dtype=str), words=self._words, threshold=self.threshold)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, **kwargs) -> "NearCopyIndex":
        """Inverse of `to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            index = cls(threshold=int(kwargs.pop("threshold", npz["threshold"])), **kwargs)
            index.add_hashes([str(i) for i in npz["ids"]], npz["words"])
        return index


def _unit(vec: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm > 0 else vec
