"""A tiny MuJoCo point mass (a ``SimEnv`` task) for proving SimOpt in isolation.

A puck slides on a plane (two slide joints) pushed by two force actuators toward a goal.
Unknown dynamics: ``dynamics.mass`` (kg), ``dynamics.damping`` (N s/m) and ``dynamics.gain``
(N per unit action). Observation: ``pos`` (2, m), ``vel`` (2, m/s), ``goal`` (2, m). The PD
policy ``PointMassPD`` reaches the goal for any plausible dynamics, and the closed-loop
trajectory depends on all three parameters, so they are identifiable from it. Not registered
as an env id: build it with ``PointMassEnv(...)`` or pass the class as an env factory.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from simenvs.core import SimEnv
from simenvs.core.params import ParamDef

__all__ = ["PointMassEnv", "PointMassPD", "make_pd"]

_XML = """
<mujoco model="pointmass">
  <option timestep="0.01"/>
  <visual><quality shadowsize="0"/></visual>
  <worldbody>
    <light name="top" pos="0 0 3"/>
    <geom type="plane" size="2 2 1" contype="0" conaffinity="0"/>
    <body name="puck" pos="0 0 0.05">
      <joint name="x" type="slide" axis="1 0 0" damping="1"/>
      <joint name="y" type="slide" axis="0 1 0" damping="1"/>
      <geom type="sphere" size="0.05" mass="1" contype="0" conaffinity="0"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="fx" joint="x" gear="4" ctrlrange="-1 1"/>
    <motor name="fy" joint="y" gear="4" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""


def _set_mass(model, value: float) -> None:
    b = model.body("puck").id
    scale = value / float(model.body_mass[b])
    model.body_mass[b] = value
    model.body_inertia[b] = model.body_inertia[b] * scale


def _set_damping(model, value: float) -> None:
    model.dof_damping[:] = value


def _set_gain(model, value: float) -> None:
    model.actuator_gear[:, 0] = value


class PointMassEnv(SimEnv):
    """Point mass reaching a goal; state ``[pos (2, m), vel (2, m/s), goal (2, m)]``."""

    control_hz = 20.0
    max_episode_steps = 60

    def build_spec(self, rng: np.random.Generator) -> mujoco.MjSpec:
        return mujoco.MjSpec.from_string(_XML)

    def param_defs(self) -> list[ParamDef]:
        return [
            ParamDef("dynamics.mass", 1.0, 0.1, 10.0, unit="kg", apply=_set_mass),
            ParamDef("dynamics.damping", 1.0, 0.0, 10.0, unit="N s/m", apply=_set_damping),
            ParamDef("dynamics.gain", 4.0, 0.5, 20.0, unit="N", apply=_set_gain),
            ParamDef("layout.goal", (0.0, 0.0), -1.0, 1.0, shape=(2,), unit="m"),
        ]

    def randomization_presets(self) -> dict[str, dict]:
        return {
            "default": {
                "dynamics.mass": [0.5, 2.0],
                "dynamics.damping": [0.5, 2.0],
                "dynamics.gain": [3.0, 5.0],
                "layout.goal": [-0.8, 0.8],
            },
        }

    def reset_task(self, rng: np.random.Generator) -> None:
        # MuJoCo caches the mass matrix of "simple" bodies (dof_M0): a new body_mass only acts
        # after mj_setConst (which also resets qpos, so it runs before placing the state).
        mujoco.mj_setConst(self.model, self.data)
        self.goal = np.asarray(self.params["layout.goal"], dtype=np.float64)

    def action_space_def(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (2,), np.float32)

    def apply_action(self, action: np.ndarray) -> None:
        self.data.ctrl[:] = action

    def state_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (6,), np.float32)

    def state_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos, self.data.qvel, self.goal]).astype(np.float32)

    def state_layout(self) -> list[tuple[str, int, str]]:
        return [("pos", 2, "m"), ("vel", 2, "m/s"), ("goal", 2, "m")]

    def action_layout(self) -> list[tuple[str, str, float, float]]:
        return [("force_x", "1", -1.0, 1.0), ("force_y", "1", -1.0, 1.0)]

    def evaluate(self) -> tuple[float, bool, dict]:
        err = float(np.linalg.norm(self.data.qpos - self.goal))
        success = err < 0.05 and float(np.linalg.norm(self.data.qvel)) < 0.1
        return -err, False, {"is_success": success}


class PointMassPD:
    """PD controller toward the goal read from the observation (works on noisy obs too)."""

    def __init__(self, env: gym.Env | None = None, kp: float = 2.0, kd: float = 0.6):
        self.kp, self.kd = kp, kd

    def reset(self) -> None:
        pass

    def act(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float64)
        pos, vel, goal = obs[0:2], obs[2:4], obs[4:6]
        return np.clip(self.kp * (goal - pos) - self.kd * vel, -1.0, 1.0).astype(np.float32)


def make_pd(env: gym.Env) -> PointMassPD:
    """Policy factory for the loop (top-level, so executors can pickle it)."""
    return PointMassPD(env)
