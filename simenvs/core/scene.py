"""MjSpec helpers that declare randomizable appearance by naming convention.

The base env finds what these helpers add in the compiled model (``rt_*`` textures,
``rc_*`` materials, ``distractor_*`` bodies) and derives appearance parameters for them, so
a task never writes randomization code for its visuals: it only says what may vary.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco

__all__ = [
    "TEXTURE_PREFIX",
    "COLOR_PREFIX",
    "DISTRACTOR_PREFIX",
    "add_random_texture",
    "add_random_color",
    "add_distractors",
    "fast_visual",
]

TEXTURE_PREFIX = "rt_"
COLOR_PREFIX = "rc_"
DISTRACTOR_PREFIX = "distractor_"
DISTRACTOR_REGION = "distractor_region"


def fast_visual(spec: mujoco.MjSpec, offwidth: int = 256, offheight: int = 256) -> None:
    """Fast headless rendering settings (shadows off, no MSAA), see DESIGN.md."""
    spec.visual.quality.shadowsize = 0
    spec.visual.quality.offsamples = 0
    spec.visual.global_.offwidth = offwidth
    spec.visual.global_.offheight = offheight


def add_random_texture(
    spec: mujoco.MjSpec,
    slot: str,
    size: int = 64,
    texrepeat: Sequence[float] = (1.0, 1.0),
    rgb1: Sequence[float] = (0.6, 0.6, 0.6),
    rgb2: Sequence[float] = (0.4, 0.4, 0.4),
    texuniform: bool = False,
) -> str:
    """Add a 2-D texture ``rt_<slot>`` and its material; returns the material name.

    The compiled pixels (a checker of rgb1/rgb2) are the nominal look; each episode may
    replace them with a procedural pattern (``appearance.tex.<slot>.*``).
    """
    name = TEXTURE_PREFIX + slot
    spec.add_texture(
        name=name,
        type=mujoco.mjtTexture.mjTEXTURE_2D,
        builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        width=size,
        height=size,
        nchannel=3,
        rgb1=list(rgb1),
        rgb2=list(rgb2),
    )
    mat = spec.add_material(name=name, texrepeat=list(texrepeat), texuniform=texuniform)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = name
    return name


def add_random_color(
    spec: mujoco.MjSpec, slot: str, rgba: Sequence[float] = (0.7, 0.7, 0.7, 1.0)
) -> str:
    """Add a plain material ``rc_<slot>`` whose RGB is randomized (``appearance.color.<slot>``)."""
    name = COLOR_PREFIX + slot
    spec.add_material(name=name, rgba=list(rgba))
    return name


def add_distractors(
    spec: mujoco.MjSpec,
    n: int,
    center: Sequence[float],
    half_extent: Sequence[float],
    texture_size: int = 32,
) -> None:
    """Add ``n`` flying, non-colliding mocap bodies that move inside a box region.

    Each gets its own random texture slot ``distractor_<i>``; the base env samples their
    count, shape, size, pose and velocity per episode and moves them every control step.
    """
    if n < 0:
        raise ValueError(f"number of distractors must be >= 0, got {n}")
    spec.add_numeric(name=DISTRACTOR_REGION, data=[*center, *half_extent])
    for i in range(n):
        mat = add_random_texture(spec, f"{DISTRACTOR_PREFIX}{i}", size=texture_size)
        body = spec.worldbody.add_body(name=f"{DISTRACTOR_PREFIX}{i}", mocap=True, pos=list(center))
        body.add_geom(
            name=f"{DISTRACTOR_PREFIX}{i}",
            type=mujoco.mjtGeom.mjGEOM_BOX,
            size=[0.05, 0.05, 0.05],
            material=mat,
            contype=0,
            conaffinity=0,
            group=1,
            mass=0.0,
        )
