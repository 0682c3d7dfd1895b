"""The gate texture set with a held-out test split.

``N_TEXTURES`` fixed procedural textures (deterministic: the set is the same on every machine)
are compiled into the model as materials ``gate_tex<k>``; an episode picks one by switching
the gate geoms' material id in place (no upload, no recompile). Textures ``TRAIN_IDS`` are for
training, ``TEST_IDS`` are never shown with ``gate_textures="train"``: evaluating with
``gate_textures="test"`` measures generalization to unseen gate appearance.
"""

from __future__ import annotations

import mujoco
import numpy as np

from simenvs.randomization.textures import make_texture

__all__ = ["N_TEXTURES", "TRAIN_IDS", "TEST_IDS", "SPLITS", "gate_texture", "add_gate_textures"]

N_TEXTURES = 16
TEST_IDS = (3, 8, 12, 15)
TRAIN_IDS = tuple(i for i in range(N_TEXTURES) if i not in TEST_IDS)
SPLITS = {"train": TRAIN_IDS, "test": TEST_IDS, "all": tuple(range(N_TEXTURES))}
_PATTERNS = ("checker", "stripes", "noise", "blobs", "flat", "gradient")
_SIZE = 64


def gate_texture(k: int, size: int = _SIZE) -> np.ndarray:
    """Pixels (size, size, 3) uint8 of gate texture ``k``: a high-contrast two-colour pattern."""
    if not 0 <= k < N_TEXTURES:
        raise ValueError(f"gate texture id must be in [0, {N_TEXTURES}), got {k}")
    rng = np.random.default_rng(7919 + k)
    pattern = _PATTERNS[k % len(_PATTERNS)]
    hue = rng.uniform(0, 1, 2)
    c1 = _hsv(hue[0], rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
    c2 = _hsv(hue[1], rng.uniform(0.0, 0.6), rng.uniform(0.0, 0.4))
    return make_texture(pattern, c1, c2, float(rng.uniform(2, 8)), int(rng.integers(1 << 30)),
                        size, size)  # fmt: skip


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def add_gate_textures(spec: mujoco.MjSpec) -> list[str]:
    """Add every gate texture and its material; returns the material names in id order."""
    names = []
    for k in range(N_TEXTURES):
        name = f"gate_tex{k}"
        tex = spec.add_texture(
            name=name, type=mujoco.mjtTexture.mjTEXTURE_2D, width=_SIZE, height=_SIZE, nchannel=3
        )
        tex.data = gate_texture(k).tobytes()
        mat = spec.add_material(name=name, texrepeat=[1.0, 1.0], texuniform=False)
        mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = name
        names.append(name)
    return names
