"""The smallest complete SimEnv task: the worked example of docs/ENV_API.md.

Not registered as an env id; the base-env tests and the core benchmark use it to exercise
the shared machinery (randomization, rendering, latency, divergence) on a tiny scene.
"""

from __future__ import annotations

import mujoco
import numpy as np
from gymnasium import spaces

from simenvs.core import SimEnv, scene
from simenvs.core.params import ParamDef, scale_param


class ToyPushEnv(SimEnv):
    """A box pushed by a force on a textured floor; success = box past x = 0.5."""

    control_hz = 20.0
    max_episode_steps = 50
    obs_camera = "top"
    render_camera = "top"
    randomized_cameras = ("top",)

    def __init__(self, *, n_textures: int = 3, **kwargs):
        self.n_textures = n_textures
        super().__init__(**kwargs)

    def build_spec(self, rng):
        spec = mujoco.MjSpec()
        spec.option.timestep = 0.005
        scene.fast_visual(spec)
        floor = scene.add_random_texture(spec, "floor", texrepeat=(4, 4))
        spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[2, 2, 1], material=floor)
        spec.worldbody.add_light(name="sun", pos=[0, 0, 3], dir=[0, 0, -1])
        spec.worldbody.add_camera(name="top", pos=[0, -1.2, 1.2], xyaxes=[1, 0, 0, 0, 0.7, 0.7])
        for i in range(self.n_textures - 1):
            mat = scene.add_random_texture(spec, f"wall{i}")
            spec.worldbody.add_geom(
                type=mujoco.mjtGeom.mjGEOM_BOX,
                size=[0.05, 1, 0.3],
                pos=[1.0 + 0.2 * i, 0, 0.3],
                material=mat,
            )
        col = scene.add_random_color(spec, "box", (0.8, 0.2, 0.2, 1))
        box = spec.worldbody.add_body(name="box", pos=[0, 0, 0.1])
        box.add_freejoint()
        box.add_geom(
            name="box", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1] * 3, material=col, mass=1.0
        )
        scene.add_distractors(spec, 3, center=[0, 0, 0.8], half_extent=[0.5, 0.5, 0.3])
        return spec

    def param_defs(self):
        box = self.model.body("box").id
        geom = self.model.geom("box").id
        return [
            scale_param(
                "dynamics.box_mass",
                self.model,
                "body_mass",
                [box],
                0.2,
                5.0,
                also=("body_inertia",),
            ),
            scale_param(
                "dynamics.box_friction", self.model, "geom_friction", [geom], 0.2, 3.0, columns=[0]
            ),
            ParamDef("dynamics.push_gain", 20.0, 1.0, 100.0, unit="N"),
            ParamDef("layout.box_x", 0.0, -0.5, 0.5, unit="m"),
        ]

    def randomization_presets(self):
        return {
            "default": {
                "dynamics.box_mass": [0.5, 2.0],
                "dynamics.box_friction": [0.5, 1.5],
                "layout.box_x": [-0.3, 0.0],
            },
            "wide": {"dynamics.box_mass": [0.25, 4.0], "layout.box_x": [-0.4, 0.1]},
        }

    def reset_task(self, rng):
        self.data.qpos[0] = self.params["layout.box_x"]
        self.data.qpos[2] = 0.1

    def action_space_def(self):
        return spaces.Box(-1.0, 1.0, (2,), np.float32)

    def apply_action(self, action):
        self.data.xfrc_applied[self.model.body("box").id, :2] = (
            action * self.params["dynamics.push_gain"]
        )

    def state_space(self):
        return spaces.Box(-np.inf, np.inf, (6,), np.float32)

    def state_obs(self):
        return np.concatenate([self.data.qpos[:3], self.data.qvel[:3]]).astype(np.float32)

    def state_layout(self):
        return [("box_pos", 3, "m"), ("box_vel", 3, "m/s")]

    def evaluate(self):
        x = float(self.data.qpos[0])
        success = x > 0.5
        return x, success, {"is_success": success}
