"""An invisible mark that survives what happens to a leaked image (crops, resizes, re-encoding,
screenshots, brightness changes); it carries a 32-bit design id and a 16-bit check."""

# How it works. One 128x128 tile of band-limited noise is repeated over the whole image (added to the
# luma, stronger where the picture is busy, so the change stays under the eye's threshold). The tile is
# a sum of orthonormal carriers: one fixed synchronisation carrier and one carrier per coded bit,
# signed by that bit. Because the tile repeats, the reader needs no alignment with the original:
# - the period of the repetition (the autocorrelation of the image's fine detail peaks at it) gives the
#   scale the image was resized by, along each axis;
# - resampling to the original scale and folding the image onto one tile (summing all periods)
#   concentrates the mark and averages the picture away;
# - the position of the synchronisation carrier in the folded tile gives the crop offset;
# - the carriers' correlations are soft values of a rate-1/2 convolutional code, decoded by Viterbi,
#   and the 16-bit check confirms the 32-bit id.
# An unmarked picture yields no strong synchronisation peak, or one whose decoded bits fail the check,
# so `detect` says None; a false id needs both to pass (and must then name a design of the studio).

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

TILE = 128
BAND = (4.0, 24.0)  # radial frequency band, in cycles per tile: periods of about 5 to 32 pixels
DATA_BITS = 32
CHECK_BITS = 16
CONSTRAINT = 7  # rate-1/2 convolutional code, generators 171 and 133 (octal), decoded by soft Viterbi
GENERATORS = (0o171, 0o133)
CODED_BITS = 2 * (DATA_BITS + CHECK_BITS + CONSTRAINT - 1)
SYNC_SHARE = 0.3  # fraction of the mark's energy spent on the synchronisation carrier
TARGET_RMS = 2.2  # luma change, in 8-bit levels (PSNR about 41 dB)
MIN_SIDE = 256  # smaller outputs are too small to carry the mark reliably
SYNC_Z_MIN = 5.0  # synchronisation peak, in standard deviations of the correlation surface
SCALE_RANGE = (0.35, 1.6)  # resize factors the reader looks for
# resize factors common enough to try even when the autocorrelation does not point at them
COMMON_SCALES = (1.0, 0.5, 0.75, 0.8, 2 / 3, 0.9, 0.6, 0.4, 1.25, 1.5, 0.85, 0.7)
SEED = 0x5D5  # the pattern is fixed: every studio reads every other studio's marks


@dataclass(frozen=True)
class Detection:
    """What `read` found: the payload (8 hex characters) or None, with the evidence."""

    payload: str | None
    sync_z: float
    scale: tuple[float, float]
    offset: tuple[int, int]


def payload_for(uid: str) -> str:
    """The 32-bit id (8 hex characters) that the mark of design `uid` carries."""
    return hashlib.sha256(uid.encode("utf-8")).hexdigest()[:8]


def _check(ident: bytes) -> bytes:
    return hashlib.sha256(b"studio-wm" + ident).digest()[: CHECK_BITS // 8]


def _parity(x: int) -> int:
    return bin(x).count("1") & 1


def _encode(bits: np.ndarray) -> np.ndarray:
    """Convolutional encoding of `bits` followed by a zero tail that returns the coder to state 0."""
    state, out = 0, []
    for u in list(bits.astype(int)) + [0] * (CONSTRAINT - 1):
        reg = (u << (CONSTRAINT - 1)) | state
        out += [_parity(reg & g) for g in GENERATORS]
        state = reg >> 1
    return np.array(out, dtype=np.float64)


def _viterbi(soft: np.ndarray) -> np.ndarray:
    """Most likely message for correlation values `soft` (positive means a coded 1)."""
    states = 1 << (CONSTRAINT - 1)
    steps = len(soft) // 2
    inputs = np.arange(2)[:, None]
    regs = (inputs << (CONSTRAINT - 1)) | np.arange(states)[None, :]  # [input, state]
    outs = [np.vectorize(lambda r, g=g: _parity(int(r) & g))(regs) * 2 - 1 for g in GENERATORS]
    nxt = regs >> 1
    score = np.full(states, -np.inf)
    score[0] = 0.0
    back = np.zeros((steps, states, 2), dtype=np.int64)  # (previous state, input) per new state
    for t in range(steps):
        gain = score[None, :] + outs[0] * soft[2 * t] + outs[1] * soft[2 * t + 1]
        new = np.full(states, -np.inf)
        for u in (0, 1):
            for st in range(states):
                if gain[u, st] > new[nxt[u, st]]:
                    new[nxt[u, st]] = gain[u, st]
                    back[t, nxt[u, st]] = (st, u)
        score = new
    state, bits = 0, []
    for t in range(steps - 1, -1, -1):
        state, u = back[t, state]
        bits.append(u)
    return np.array(bits[::-1][: steps - (CONSTRAINT - 1)], dtype=np.uint8)


def _message_bits(payload: str) -> np.ndarray:
    ident = bytes.fromhex(payload)
    return np.unpackbits(np.frombuffer(ident + _check(ident), dtype=np.uint8))


def _coded_bits(payload: str) -> np.ndarray:
    return _encode(_message_bits(payload))


@lru_cache(maxsize=1)
def _radius() -> np.ndarray:
    f = np.fft.fftfreq(TILE) * TILE
    return np.hypot(f[:, None], f[None, :])


@lru_cache(maxsize=1)
def _band_mask() -> np.ndarray:
    radius = _radius()
    return (radius >= BAND[0]) & (radius <= BAND[1])


@lru_cache(maxsize=1)
def _rings() -> tuple[np.ndarray, np.ndarray]:
    """Integer ring index of each frequency and the number of frequencies per ring."""
    ring = np.rint(_radius()).astype(int)
    return ring, np.maximum(np.bincount(ring.ravel()), 1)


@lru_cache(maxsize=1)
def _sync_spectrum_conj() -> np.ndarray:
    return np.conj(np.fft.fft2(_carriers()[0].reshape(TILE, TILE)))


_CARRIERS: np.ndarray | None = None


def _carriers() -> np.ndarray:
    """(1 + CODED_BITS, TILE*TILE) orthonormal, band-limited, periodic carriers; row 0 is the sync."""
    global _CARRIERS
    if _CARRIERS is None:
        rng = np.random.default_rng(SEED)
        band = _band_mask()
        rows = []
        for _ in range(1 + CODED_BITS):
            spectrum = np.fft.fft2(rng.standard_normal((TILE, TILE))) * band
            rows.append(np.real(np.fft.ifft2(spectrum)).ravel())
        q, _ = np.linalg.qr(np.array(rows).T)  # orthonormal columns spanning the same in-band space
        _CARRIERS = np.ascontiguousarray(q.T)
    return _CARRIERS


def tile_for(payload: str) -> np.ndarray:
    """The TILE x TILE pattern (RMS 1) that carries `payload`."""
    carriers = _carriers()
    signs = 2.0 * _coded_bits(payload) - 1.0
    pattern = np.sqrt(SYNC_SHARE) * carriers[0] + np.sqrt((1 - SYNC_SHARE) / CODED_BITS) * (signs @ carriers[1:])
    pattern = pattern.reshape(TILE, TILE)
    return pattern / np.sqrt(np.mean(pattern**2))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _masking(y: np.ndarray) -> np.ndarray:
    """Local visual masking (mean 1 in the squared sense): more mark where the picture is busy."""
    import cv2

    detail = y - cv2.GaussianBlur(y, (0, 0), 2.0)
    activity = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 6.0))
    mask = np.clip((activity + 3.0) / (np.mean(activity) + 3.0), 0.35, 2.5)
    return mask / np.sqrt(np.mean(mask**2))


def embed(image: Image.Image, uid: str) -> Image.Image:
    """`image` with the mark of `uid` (RGB or RGBA; alpha kept). Raises ValueError when too small."""
    if min(image.size) < MIN_SIDE:
        raise ValueError(f"image {image.width}x{image.height} is smaller than {MIN_SIDE} px on a side")
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    h, w = rgb.shape[:2]
    pattern = np.tile(tile_for(payload_for(uid)), (h // TILE + 1, w // TILE + 1))[:h, :w]
    delta = (TARGET_RMS * _masking(_luma(rgb)) * pattern).astype(np.float32)
    out = np.clip(np.rint(rgb + delta[..., None]), 0, 255).astype(np.uint8)
    marked = Image.fromarray(out, "RGB")
    if image.mode == "RGBA":
        marked.putalpha(image.getchannel("A"))
    return marked


# --------------------------------------------------------------------------- reading


def _detail(image: Image.Image) -> np.ndarray:
    """The image's fine detail (band-pass of the luma), clipped so strong edges do not dominate."""
    import cv2

    y = _luma(np.asarray(image.convert("RGB"), dtype=np.float32))
    detail = cv2.GaussianBlur(y, (0, 0), 0.6) - cv2.GaussianBlur(y, (0, 0), 6.0)
    # Weight each pixel by the inverse of the picture's local activity: the mark was scaled up where
    # the picture is busy, and so is the noise the picture adds, so this is the matched weighting.
    activity = np.sqrt(cv2.GaussianBlur(detail * detail, (0, 0), 6.0))
    detail = detail / (activity + 1.0)
    return np.clip(detail, -3.0, 3.0)


def _period_candidates(detail: np.ndarray) -> list[tuple[float, float]]:
    """Likely repetition periods (px, py) in pixels, from peaks of the autocorrelation."""
    h, w = detail.shape
    window = np.outer(np.hanning(h), np.hanning(w)).astype(np.float32)
    # Circular autocorrelation: the window takes the image's edges to zero, so wrapping adds little.
    spectrum = np.fft.rfft2(detail * window)
    auto = np.fft.irfft2(spectrum.real**2 + spectrum.imag**2, s=(h, w))
    lo, hi = SCALE_RANGE[0] * TILE, SCALE_RANGE[1] * TILE
    per_axis = []
    for profile, size in ((auto[0, :w], w), (auto[:h, 0], h)):
        # Average the lag profile with its neighbours off the axis: the mark repeats on every row.
        profile = profile / (profile[0] + 1e-9)
        top = min(int(hi) + 2, size // 2)
        lags = np.arange(top, dtype=np.float64)
        found = []
        for lag in range(max(int(lo), 2), top - 1):
            if profile[lag] > profile[lag - 1] and profile[lag] >= profile[lag + 1]:
                a, b, c = profile[lag - 1], profile[lag], profile[lag + 1]
                shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
                found.append((b, lags[lag] + shift))
        found.sort(reverse=True)
        periods = [p for _, p in found[:4]]
        periods += [p / k for p in list(periods) for k in (2, 3) if p / k >= lo]
        per_axis.append(periods)
    candidates = [(TILE * f, TILE * f) for f in COMMON_SCALES]
    for px in per_axis[0]:
        # most resamples keep the aspect: pair each period with itself, and with the other axis' best
        candidates.append((px, px))
        for py in per_axis[1][:2]:
            candidates.append((px, py))
    for py in per_axis[1]:
        candidates.append((py, py))
    unique: list[tuple[float, float]] = []
    for c in candidates:
        if all(abs(c[0] - u[0]) > 0.05 or abs(c[1] - u[1]) > 0.05 for u in unique):
            unique.append(c)
    return unique


def _fold(detail: np.ndarray, px: float, py: float) -> np.ndarray | None:
    """Resample so one period is TILE pixels and sum all periods onto one tile."""
    import cv2

    h, w = detail.shape
    nw, nh = int(round(w * TILE / px)), int(round(h * TILE / py))
    if min(nw, nh) < TILE:
        return None
    rows, cols = -(-nh // TILE), -(-nw // TILE)
    canvas = np.zeros((rows * TILE, cols * TILE), dtype=np.float32)
    canvas[:nh, :nw] = cv2.resize(detail, (nw, nh), interpolation=cv2.INTER_LINEAR)
    total = canvas.reshape(rows, TILE, cols, TILE).sum(axis=(0, 2))
    # How many periods cover each tile position: full ones, plus the partial last row / column.
    per_row = np.full(TILE, rows - 1.0) + (np.arange(TILE) < nh - (rows - 1) * TILE)
    per_col = np.full(TILE, cols - 1.0) + (np.arange(TILE) < nw - (cols - 1) * TILE)
    return total / np.maximum(np.outer(per_row, per_col), 1.0)


def _whitened(tile: np.ndarray) -> np.ndarray:
    """The tile's in-band spectrum with unit magnitude per frequency (the picture's 1/f falls away)."""
    band = _band_mask()
    spectrum = np.fft.fft2(tile) * band
    ring, counts = _rings()
    power = np.bincount(ring.ravel(), (spectrum.real**2 + spectrum.imag**2).ravel(), minlength=len(counts)) / counts
    return np.where(band, spectrum / np.sqrt(power[ring] + 1e-12), 0)


def _sync(tile: np.ndarray) -> tuple[float, tuple[int, int], np.ndarray]:
    """(z-score of the sync peak, its offset, the whitened spectrum)."""
    white = _whitened(tile)
    surface = np.real(np.fft.ifft2(white * _sync_spectrum_conj()))
    peak = int(np.argmax(surface))
    dy, dx = divmod(peak, TILE)
    z = (surface.flat[peak] - surface.mean()) / (surface.std() + 1e-12)
    return float(z), (dy, dx), white


def _soft_bits(white: np.ndarray, offset: tuple[int, int]) -> np.ndarray:
    aligned = np.real(np.fft.ifft2(white))
    aligned = np.roll(aligned, (-offset[0], -offset[1]), axis=(0, 1)).ravel()
    return _carriers()[1:] @ aligned


def _decode(soft: np.ndarray) -> str | None:
    data = np.packbits(_viterbi(soft)).tobytes()
    ident, check = data[: DATA_BITS // 8], data[DATA_BITS // 8 :]
    return ident.hex() if _check(ident) == check else None


def _best_fold(detail: np.ndarray, periods: list[tuple[float, float]]):
    best = None
    for px, py in periods:
        tile = _fold(detail, px, py)
        if tile is None:
            continue
        z, offset, white = _sync(tile)
        if best is None or z > best[0]:
            best = (z, (px, py), offset, white)
    return best


def read(image: Image.Image) -> Detection:
    """Look for the mark at every likely scale; return the strongest synchronisation found."""
    none = Detection(None, 0.0, (1.0, 1.0), (0, 0))
    if min(image.size) < 48:
        return none
    detail = _detail(image)
    best = _best_fold(detail, _period_candidates(detail))
    if best is None:
        return none
    # The autocorrelation peak is a few tenths of a pixel off; a 1 % scale error over eight periods
    # already smears the finest carriers, so refine around it.
    for step in (0.004, 0.001):
        px, py = best[1]
        around = [(px * (1 + i * step), py * (1 + j * step)) for i in range(-3, 4) for j in range(-3, 4) if i == j or i == 0 or j == 0]
        best = max(best, _best_fold(detail, around) or best, key=lambda b: b[0])
    z, (px, py), offset, white = best
    payload = _decode(_soft_bits(white, offset)) if z >= SYNC_Z_MIN else None
    return Detection(payload, z, (px / TILE, py / TILE), offset)


def detect(image: Image.Image) -> str | None:
    """The 32-bit payload (8 hex characters) the image carries, or None."""
    return read(image).payload


def psnr(original: Image.Image, marked: Image.Image) -> float:
    a = np.asarray(original.convert("RGB"), dtype=np.float64)
    b = np.asarray(marked.convert("RGB"), dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
