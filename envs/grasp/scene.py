"""The grasp scene as an ``MjSpec``: table, room, lights, cameras, arm, objects, distractors.

Everything that appearance randomization may change is declared through
``simenvs.core.scene`` (random textures for table/floor/walls/robot/each object slot, a
random colour per background clutter item, flying distractors), so the base env derives the
parameters. Coordinates: the robot base sits at the origin on the table top (z = 0).
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from simenvs.core import scene
from simenvs.envs.grasp.objects import GraspObject, add_object
from simenvs.robots import arm

__all__ = [
    "TABLE_TOP",
    "OBJECT_REGION",
    "N_CLUTTER",
    "CLUTTER_REGION",
    "CAMERA_POSES",
    "build_scene",
    "object_body",
    "look_at_quat",
]

TABLE_TOP = 0.0
OBJECT_REGION = ((0.38, 0.68), (-0.2, 0.2))  # x, y ranges of object centres on the table
N_CLUTTER = 3  # static, non-colliding background items ("contextual" distractors)
# name -> (position, look-at point, fovy in degrees)
CAMERA_POSES = {
    "shoulder": ((0.1, 0.45, 0.8), (0.5, 0.0, 0.12), 55.0),  # over the robot's shoulder
    "front": ((1.35, 0.0, 0.8), (0.45, 0.0, 0.05), 45.0),  # facing the robot, for videos
}
CLUTTER_REGION = ((0.85, 1.05), (-0.65, 0.65))  # x, y of background items (off the workspace)
_BOX = mujoco.mjtGeom.mjGEOM_BOX
_NOCOLLIDE = {"contype": 0, "conaffinity": 0}


def object_body(i: int) -> str:
    return f"object{i}"


def look_at_quat(pos: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """Quaternion of a MuJoCo camera at ``pos`` looking at ``target`` (world z up)."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, fwd)
    mat = np.column_stack([right, up, -fwd])  # camera x, y, z (looks along -z)
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, mat.ravel())
    return q


def build_scene(
    objects: Sequence[GraspObject],
    n_distractors: int = 4,
    arm_config: arm.ArmConfig | None = None,
) -> mujoco.MjSpec:
    """The full scene for one set of objects (placed later by the env at reset).

    The static part is built once per configuration and copied (~0.2 ms instead of ~8 ms
    of Python spec building per reset)."""
    key = (int(n_distractors), arm_config)
    if key not in _STATIC:
        _STATIC[key] = _static_scene(n_distractors, arm_config)
    spec = _STATIC[key].copy()
    ct, ca = arm.GROUP_WORLD
    for i, obj in enumerate(objects):
        mat = scene.add_random_texture(
            spec, object_body(i), size=32, rgb1=(0.8, 0.3, 0.2), rgb2=(0.7, 0.25, 0.15)
        )
        # Parked below the table until the env places them.
        add_object(
            spec,
            obj,
            object_body(i),
            pos=(0.5, 0.0, -0.5 - 0.2 * i),
            material=mat,
            contype=ct,
            conaffinity=ca,
        )
    return spec


_STATIC: dict[tuple, mujoco.MjSpec] = {}


def _static_scene(n_distractors: int, arm_config: arm.ArmConfig | None) -> mujoco.MjSpec:
    spec = mujoco.MjSpec()
    spec.modelname = "grasp"
    arm.configure_physics(spec)
    scene.fast_visual(spec)
    # Coarser tessellation of primitives: llvmpipe's cost here is triangles, not pixels
    # (measured at 84x84: 28/16/4 slices/stacks/quads ~13 ms, 12/6/1 ~2-5 ms per frame).
    q = spec.visual.quality
    q.numslices, q.numstacks, q.numquads = 10, 5, 1
    spec.stat.extent = 2.0
    spec.stat.center = [0.4, 0.0, 0.0]
    spec.visual.map.znear = 0.01
    wb = spec.worldbody
    ct, ca = arm.GROUP_WORLD

    floor = scene.add_random_texture(
        spec, "floor", texrepeat=(4, 4), rgb1=(0.45, 0.42, 0.4), rgb2=(0.35, 0.33, 0.3)
    )
    wall = scene.add_random_texture(
        spec, "walls", texrepeat=(3, 2), rgb1=(0.75, 0.75, 0.72), rgb2=(0.68, 0.68, 0.66)
    )
    table = scene.add_random_texture(
        spec, "table", texrepeat=(3, 3), rgb1=(0.55, 0.42, 0.3), rgb2=(0.5, 0.38, 0.27)
    )
    robot = scene.add_random_texture(
        spec, "robot", size=32, rgb1=(0.9, 0.9, 0.9), rgb2=(0.85, 0.85, 0.85)
    )
    # Draw order is geom order: near, large surfaces first, so the depth test rejects the
    # hidden parts of what lies behind them (pedestal, walls, floor) before llvmpipe shades
    # them (measured: ~10 % less per 84x84 frame, pixel-identical images).
    wb.add_geom(
        name="table",
        type=_BOX,
        size=[0.7, 0.65, 0.025],
        pos=[0.4, 0, -0.025],
        material=table,
        contype=ct,
        conaffinity=ca,
        friction=[0.8, 0.005, 0.0001],
    )
    for i in range(N_CLUTTER):
        mat = scene.add_random_color(spec, f"clutter{i}", (0.5, 0.5, 0.6, 1.0))
        wb.add_geom(
            name=f"clutter{i}",
            type=_BOX,
            size=[0.05, 0.05, 0.05],
            pos=[1.0, -0.4 + 0.4 * i, 0.05],
            material=mat,
            **_NOCOLLIDE,
        )

    # The table stands on one pedestal: every geom is a draw call, legs are four.
    wb.add_geom(
        name="table_base",
        type=_BOX,
        size=[0.5, 0.45, 0.35],
        pos=[0.4, 0, -0.4],
        material=table,
        **_NOCOLLIDE,
    )
    wb.add_geom(
        name="wall_back",
        type=_BOX,
        size=[0.02, 2.0, 1.2],
        pos=[2.0, 0, 0.45],
        material=wall,
        **_NOCOLLIDE,
    )
    for side in (1, -1):
        wb.add_geom(
            name=f"wall_side{'l' if side > 0 else 'r'}",
            type=_BOX,
            size=[2.0, 0.02, 1.2],
            pos=[0.4, side * 1.6, 0.45],
            material=wall,
            **_NOCOLLIDE,
        )

    # The floor is a thin box between the walls, not a plane: nothing collides with it, and
    # llvmpipe draws a textured plane ~0.2 ms slower per 84x84 frame (measured; a plane is
    # a grid of quads, a box face one quad).
    wb.add_geom(
        name="floor",
        type=_BOX,
        size=[1.8, 1.6, 0.01],
        pos=[0.2, 0, -0.76],
        material=floor,
        **_NOCOLLIDE,
    )

    wb.add_light(
        name="key",
        pos=[0.6, -0.6, 2.0],
        dir=[-0.1, 0.3, -1.0],
        diffuse=[0.6] * 3,
        ambient=[0.1] * 3,
        castshadow=False,
    )
    wb.add_light(
        name="fill",
        pos=[-0.5, 0.8, 1.5],
        dir=[0.5, -0.5, -0.7],
        diffuse=[0.3] * 3,
        castshadow=False,
    )
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.diffuse = [0.35, 0.35, 0.35]

    for name, (pos, target, fovy) in CAMERA_POSES.items():
        wb.add_camera(name=name, pos=list(pos), quat=look_at_quat(pos, target).tolist(), fovy=fovy)

    arm.add_arm(spec, config=arm_config, material=robot)
    # Wrist camera: beside the palm, looking down the fingers.
    spec.body("hand").add_camera(
        name="wrist", pos=[0.06, 0.0, 0.0], quat=[0.0, 0.0, 1.0, 0.0], fovy=75.0
    )

    if n_distractors:
        scene.add_distractors(
            spec, n_distractors, center=[0.55, 0.0, 0.45], half_extent=[0.35, 0.45, 0.25]
        )
    return spec
