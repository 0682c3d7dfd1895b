"""Procedural textures: a few numpy/OpenCV lines each, deterministic in their parameters.

Every pattern mixes two colours with a mask in [0, 1]; ``scale`` is the number of features
across the texture and ``seed`` fixes the random ones (noise, blobs, stripe angle).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

PATTERNS = ("flat", "checker", "stripes", "gradient", "noise", "blobs")

__all__ = ["PATTERNS", "make_texture"]


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / h, x / w


def _mask(pattern: str, scale: float, seed: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = max(1.0, float(scale))
    if pattern == "flat":
        return np.zeros((h, w), np.float32)
    if pattern == "checker":
        y, x = _grid(h, w)
        return ((np.floor(y * n) + np.floor(x * n)) % 2).astype(np.float32)
    if pattern == "stripes":
        y, x = _grid(h, w)
        a = rng.uniform(0, np.pi)
        return (np.sin((x * np.cos(a) + y * np.sin(a)) * n * 2 * np.pi) > 0).astype(np.float32)
    if pattern == "gradient":
        y, x = _grid(h, w)
        a = rng.uniform(0, 2 * np.pi)
        t = x * np.cos(a) + y * np.sin(a)
        return ((t - t.min()) / max(float(np.ptp(t)), 1e-6)).astype(np.float32)
    if pattern == "noise":  # value noise, three octaves
        out = np.zeros((h, w), np.float32)
        amp, total = 1.0, 0.0
        for octave in range(3):
            k = int(min(max(2, n * 2**octave), max(h, w)))
            coarse = rng.random((k, k)).astype(np.float32)
            out += amp * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
            total += amp
            amp *= 0.5
        return np.clip(out / total, 0, 1)
    if pattern == "blobs":
        m = np.zeros((h, w), np.float32)
        count = int(np.clip(n * 1.5, 1, 64))
        centres = rng.random((count, 2)) * (w, h)
        radii = rng.uniform(0.3, 1.0, count) * max(h, w) / (1.5 * n)
        for (cx, cy), r in zip(centres, radii):
            cv2.circle(m, (int(cx), int(cy)), max(1, int(r)), 1.0, -1)
        return m
    raise ValueError(f"unknown texture pattern {pattern!r}; patterns: {list(PATTERNS)}")


def make_texture(
    pattern: str,
    color1: np.ndarray,
    color2: np.ndarray,
    scale: float = 4.0,
    seed: int = 0,
    height: int = 64,
    width: int = 64,
) -> np.ndarray:
    """An (height, width, 3) uint8 texture; colours are RGB in [0, 1]."""
    m = _mask(pattern, scale, int(seed), height, width)[..., None]
    c1 = np.asarray(color1, np.float32).reshape(1, 1, 3)
    c2 = np.asarray(color2, np.float32).reshape(1, 1, 3)
    return np.clip((c1 * (1 - m) + c2 * m) * 255.0 + 0.5, 0, 255).astype(np.uint8)
