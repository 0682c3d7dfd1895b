"""Generic presets for the parameters the base env derives (appearance, sensor, latency).

They are written against the registry, so camera FOV and light colours vary around each
model's own nominal values. Tasks merge their own entries on top.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from simenvs.randomization.appearance import SHAPES
from simenvs.randomization.params import ParamDef
from simenvs.randomization.textures import PATTERNS

__all__ = ["base_presets"]


def _around(p: ParamDef, rel: float, abs_: float = 0.0) -> dict[str, Any]:
    nom = np.asarray(p.nominal, float)
    lo, hi = p.bounds()
    d = np.abs(nom) * rel + abs_
    return {"dist": "uniform", "low": np.maximum(nom - d, lo).tolist(),
            "high": np.minimum(nom + d, hi).tolist()}  # fmt: skip


def base_presets(registry: Sequence[ParamDef]) -> dict[str, dict[str, Any]]:
    default: dict[str, Any] = {}
    wide: dict[str, Any] = {}
    for p in registry:
        n = p.name
        if n.startswith("appearance.tex."):
            leaf = n.rsplit(".", 1)[1]
            if leaf == "pattern":
                default[n] = wide[n] = {"dist": "categorical", "choices": list(PATTERNS)}
            elif leaf in ("color1", "color2"):
                default[n] = wide[n] = [0.0, 1.0]
            elif leaf == "scale":
                default[n], wide[n] = [2.0, 10.0], [1.0, 24.0]
            elif leaf == "seed":
                default[n] = wide[n] = [0, 1_000_000]
        elif n.startswith("appearance.color."):
            default[n], wide[n] = [0.1, 0.9], [0.0, 1.0]
        elif n.startswith("appearance.light."):
            leaf = n.rsplit(".", 1)[1]
            if leaf == "pos_offset":
                default[n], wide[n] = [-1.0, 1.0], [-3.0, 3.0]
            elif leaf == "dir_offset":
                default[n], wide[n] = [-0.3, 0.3], [-0.8, 0.8]
            elif leaf == "diffuse":
                default[n], wide[n] = _around(p, 0.3), _around(p, 0.6, 0.1)
            elif leaf == "ambient":
                default[n], wide[n] = _around(p, 0.3, 0.02), _around(p, 0.6, 0.1)
            elif leaf == "active":
                wide[n] = {"dist": "categorical", "choices": [True, False], "probs": [0.8, 0.2]}
        elif n.startswith("appearance.headlight."):
            default[n], wide[n] = _around(p, 0.3, 0.03), _around(p, 0.6, 0.1)
        elif n.startswith("appearance.camera."):
            leaf = n.rsplit(".", 1)[1]
            if leaf == "pos_offset":
                default[n], wide[n] = [-0.02, 0.02], [-0.08, 0.08]
            elif leaf == "rot_offset":
                default[n], wide[n] = [-2.0, 2.0], [-6.0, 6.0]
            elif leaf == "fovy":
                default[n], wide[n] = _around(p, 0.0, 4.0), _around(p, 0.0, 12.0)
        elif n == "appearance.distractors.count":
            hi = int(np.asarray(p.high))
            default[n] = {"dist": "categorical", "choices": list(range(0, hi // 2 + 1))}
            wide[n] = {"dist": "categorical", "choices": list(range(0, hi + 1))}
        elif n.startswith("appearance.distractor."):
            leaf = n.rsplit(".", 1)[1]
            if leaf == "shape":
                default[n] = wide[n] = {"dist": "categorical", "choices": list(SHAPES)}
            elif leaf == "size":
                default[n], wide[n] = [0.01, 0.08], [0.01, 0.2]
            elif leaf == "pos":
                default[n] = wide[n] = [-1.0, 1.0]
            elif leaf == "vel":
                default[n], wide[n] = [-0.5, 0.5], [-2.0, 2.0]
    default |= {
        "sensor.image.gaussian_std": [0.0, 4.0],
        "sensor.image.blur_sigma": [0.0, 0.6],
        "sensor.image.brightness": [-0.08, 0.08],
        "sensor.image.contrast": [0.85, 1.15],
        "sensor.image.gamma": [0.85, 1.15],
        "sensor.image.hue": [-4.0, 4.0],
        "sensor.image.saturation": [0.8, 1.2],
        "sensor.depth.noise_std": [0.0, 0.01],
    }
    wide |= {
        "sensor.image.gaussian_std": [0.0, 12.0],
        "sensor.image.shot_noise": [0.0, 0.5],
        "sensor.image.blur_sigma": [0.0, 1.5],
        "sensor.image.motion_blur": [0.0, 5.0],
        "sensor.image.motion_blur_angle": [0.0, 180.0],
        "sensor.image.brightness": [-0.2, 0.2],
        "sensor.image.contrast": [0.6, 1.5],
        "sensor.image.gamma": [0.7, 1.4],
        "sensor.image.hue": [-12.0, 12.0],
        "sensor.image.saturation": [0.5, 1.5],
        "sensor.image.jpeg_quality": [30.0, 100.0],
        "sensor.image.distortion_k1": [-0.15, 0.15],
        "sensor.depth.noise_std": [0.0, 0.03],
        "sensor.depth.dropout": [0.0, 0.05],
        "dynamics.action_latency": {"dist": "categorical", "choices": [0, 1, 2]},
    }
    names = {p.name for p in registry}
    return {
        "default": {k: v for k, v in default.items() if k in names},
        "wide": {k: v for k, v in wide.items() if k in names},
    }
