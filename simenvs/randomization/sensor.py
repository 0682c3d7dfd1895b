"""Sensor modders: camera and state noise applied to observations (OpenCV, uint8 in/out).

Each effect is skipped when its parameter sits at its neutral value, so the common case of
no sensor randomization costs nothing. Per-pixel work is table lookups where the effect is a
function of the pixel value (hue/saturation, brightness/contrast/gamma, additive Gaussian noise
from 16 random bits per value): a 64x64 frame's effects cost tens of microseconds, not hundreds.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

# OpenCV's pool workers spin (sched_yield) between calls: beside an env that filters one small
# frame per step they burned ~15-20 % of a core, the core a second env worker needs, and
# frames this small gain nothing from threads. A user's OPENCV_FOR_THREADS_NUM wins.
if "OPENCV_FOR_THREADS_NUM" not in os.environ:
    cv2.setNumThreads(1)

from simenvs.randomization.params import ParamDef

__all__ = ["sensor_param_defs", "apply_image_noise", "apply_depth_noise", "SENSOR_DEFAULTS"]

# name -> (neutral value, low, high, unit, doc)
_IMAGE = {
    "gaussian_std": (0.0, 0.0, 64.0, "px", "additive Gaussian noise std, 0-255 scale"),
    "shot_noise": (0.0, 0.0, 1.0, "1", "signal-dependent (Poisson-like) noise strength"),
    "blur_sigma": (0.0, 0.0, 4.0, "px", "Gaussian blur sigma"),
    "motion_blur": (0.0, 0.0, 15.0, "px", "motion-blur kernel length"),
    "motion_blur_angle": (0.0, 0.0, 180.0, "deg", "motion-blur direction"),
    "brightness": (0.0, -0.5, 0.5, "1", "additive brightness, fraction of full scale"),
    "contrast": (1.0, 0.2, 3.0, "x", "contrast gain about mid-grey"),
    "gamma": (1.0, 0.3, 3.0, "1", "gamma exponent"),
    "hue": (0.0, -90.0, 90.0, "deg", "hue rotation"),
    "saturation": (1.0, 0.0, 3.0, "x", "saturation gain"),
    "jpeg_quality": (100.0, 5.0, 100.0, "1", "JPEG quality (100 = no compression)"),
    "distortion_k1": (0.0, -0.5, 0.5, "1", "radial lens distortion coefficient"),
}
_DEPTH = {
    "noise_std": (0.0, 0.0, 0.5, "m", "depth noise std, proportional to depth at 1 m"),
    "dropout": (0.0, 0.0, 0.5, "1", "fraction of depth pixels lost (read as 0)"),
}
SENSOR_DEFAULTS = {f"sensor.image.{k}": v[0] for k, v in _IMAGE.items()} | {
    f"sensor.depth.{k}": v[0] for k, v in _DEPTH.items()
}


def sensor_param_defs(with_images: bool = True) -> list[ParamDef]:
    defs = [
        ParamDef(
            "sensor.state.noise_std",
            0.0,
            0.0,
            1.0,
            unit="obs units",
            doc="std of Gaussian noise on state observations (times the task's per-dim scale)",
        )
    ]
    if with_images:
        for group, table in (("image", _IMAGE), ("depth", _DEPTH)):
            for k, (nom, lo, hi, unit, doc) in table.items():
                defs.append(ParamDef(f"sensor.{group}.{k}", nom, lo, hi, unit=unit, doc=doc))
    return defs


@lru_cache(maxsize=16)
def _distortion_maps(k1: float, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    nx, ny = (x - cx) / cx, (y - cy) / cy
    f = 1 + k1 * (nx * nx + ny * ny)
    return (nx * f * cx + cx).astype(np.float32), (ny * f * cy + cy).astype(np.float32)


@lru_cache(maxsize=64)
def _photometric_lut(brightness: float, contrast: float, gamma: float) -> np.ndarray:
    """Brightness, contrast and gamma as one 256-entry table (an episode uses one)."""
    f = np.arange(256, dtype=np.float64) / 255.0
    f = np.clip((f - 0.5) * contrast + 0.5 + brightness, 0.0, 1.0) ** (1.0 / gamma)
    return np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)


@lru_cache(maxsize=64)
def _hsv_lut(hue: float, saturation: float) -> np.ndarray:
    """Hue rotation (deg) and saturation gain on OpenCV's 8-bit HSV as one 3-channel table."""
    v = np.arange(256, dtype=np.float32)  # float32 arithmetic, as a per-pixel float32 pass
    h = (v + np.float32(hue / 2.0)) % np.float32(180.0)
    s = np.clip(v * np.float32(saturation), 0, 255)
    return np.stack([h, s, v], axis=-1).astype(np.uint8).reshape(256, 1, 3)


@lru_cache(maxsize=1)
def _normal_quantiles() -> np.ndarray:
    """Standard-normal quantiles at the midpoints of 65,536 equal-probability bins."""
    from scipy.special import ndtri

    return ndtri((np.arange(65536) + 0.5) / 65536.0)


@lru_cache(maxsize=8)
def _gaussian_table(std: float) -> np.ndarray:
    """Rounded additive noise (int16) for each 16-bit random value: ``floor(std * z + 0.5)``
    of that value's normal quantile, so ``clip(pixel + table[u])`` is the rounded, clipped
    ``pixel + N(0, std^2)`` (tails cut at 4.2 std)."""
    return np.floor(std * _normal_quantiles() + 0.5).astype(np.int16)


def _add_table_noise(img: np.ndarray, table: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` (uint8) plus rounded noise from ``table``: 16 random bits per value (raw
    generator output, 4 values per draw), one table lookup, one saturating add. ``mode="clip"``
    skips take's bounds check (a uint16 index is always inside the 65,536-entry table; the
    result is the same) and saves ~40 % of the lookup."""
    n = img.size
    raw = rng.bit_generator.random_raw((n + 3) // 4).view(np.uint16)[:n]
    return cv2.add(img, table.take(raw, mode="clip").reshape(img.shape), dtype=cv2.CV_8U)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = max(1, int(round(length)))
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), angle, 1.0)
    k = cv2.warpAffine(k, rot, (n, n))
    return k / max(float(k.sum()), 1e-6)


# OpenCV's 8-bit Gaussian blur (fixed-point kernel) returns its input unchanged up to sigma
# 0.283 (worst case: one dark pixel among bright ones; checked by a test): below this the blur
# is skipped, which is exact. The default preset draws sigma from [0, 0.6].
_BLUR_IDENTITY_SIGMA = 0.27

_IMAGE_KEYS = tuple(f"sensor.image.{k}" for k in _IMAGE)
_IMAGE_NEUTRAL = tuple(v[0] for v in _IMAGE.values())
_Step = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@lru_cache(maxsize=16)  # an episode uses one; a plan may hold a 128 kB noise table
def _image_plan(values: tuple) -> tuple[_Step, ...]:
    """The camera effects an episode's sensor values call for, in order, with their tables
    and kernels built once: a frame then costs only the effects, not 12 parameter lookups
    and checks (an episode uses one plan; ``apply_image_noise`` caches it by value)."""
    g = dict(zip(_IMAGE, values))
    steps: list[_Step] = []
    if g["distortion_k1"] != 0.0:
        k1 = float(g["distortion_k1"])

        def distort(out, rng):
            mx, my = _distortion_maps(k1, *out.shape[:2])
            return cv2.remap(out, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

        steps.append(distort)
    if g["motion_blur"] >= 2.0:
        kernel = _motion_kernel(g["motion_blur"], g["motion_blur_angle"])
        steps.append(lambda out, rng: cv2.filter2D(out, -1, kernel))
    if g["blur_sigma"] > _BLUR_IDENTITY_SIGMA:
        sigma = float(g["blur_sigma"])
        steps.append(lambda out, rng: cv2.GaussianBlur(out, (0, 0), sigma))
    if abs(g["hue"]) > 0.25 or abs(g["saturation"] - 1.0) > 0.01:
        hsv_lut = _hsv_lut(float(g["hue"]), float(g["saturation"]))

        def hue_saturation(out, rng):
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
            return cv2.cvtColor(cv2.LUT(hsv, hsv_lut), cv2.COLOR_HSV2RGB)

        steps.append(hue_saturation)
    if g["brightness"] != 0.0 or g["contrast"] != 1.0 or g["gamma"] != 1.0:
        lut = _photometric_lut(g["brightness"], g["contrast"], g["gamma"])
        steps.append(lambda out, rng: cv2.LUT(out, lut))
    std, shot = g["gaussian_std"], g["shot_noise"]
    if std > 0.0 and shot <= 0.0:
        table = _gaussian_table(float(std))
        steps.append(lambda out, rng: _add_table_noise(out, table, rng))
    elif std > 0.0 or shot > 0.0:

        def float_noise(out, rng):
            f = out.astype(np.float32) / 255.0
            if shot > 0.0:
                f = f + rng.standard_normal(f.shape, np.float32) * np.sqrt(f * shot / 30.0)
            if std > 0.0:
                f = f + rng.standard_normal(f.shape, np.float32) * (std / 255.0)
            return np.clip(f * 255.0 + 0.5, 0, 255).astype(np.uint8)

        steps.append(float_noise)
    if g["jpeg_quality"] < 99.5:
        params = [cv2.IMWRITE_JPEG_QUALITY, int(g["jpeg_quality"])]

        def jpeg(out, rng):
            ok, buf = cv2.imencode(".jpg", out[..., ::-1], params)
            if not ok:
                return out
            return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])

        steps.append(jpeg)
    return tuple(steps)


def apply_image_noise(
    img: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator
) -> np.ndarray:
    """Apply the episode's camera effects to an (H, W, 3) uint8 image; returns a new array."""
    values = tuple(map(p.get, _IMAGE_KEYS, _IMAGE_NEUTRAL))
    try:
        plan = _image_plan(values)
    except TypeError:  # an unhashable value (a 0-d array passed as an override)
        plan = _image_plan(tuple(float(v) for v in values))
    out = img
    for step in plan:
        out = step(out, rng)
    return out if out is not img else img.copy()


def apply_depth_noise(
    depth: np.ndarray, p: Mapping[str, Any], rng: np.random.Generator
) -> np.ndarray:
    """Noise and dropout on a float depth map in metres (before quantization)."""
    std = p.get("sensor.depth.noise_std", 0.0)
    drop = p.get("sensor.depth.dropout", 0.0)
    out = depth
    if std > 0.0:
        out = out + rng.standard_normal(out.shape).astype(out.dtype) * std * out
    if drop > 0.0:
        out = np.where(rng.random(out.shape) < drop, 0.0, out).astype(depth.dtype)
    return out
