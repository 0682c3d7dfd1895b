"""Entry points that pick the physics engine: ``gym.make(id, engine="mujoco"|"pybullet")``.

The drone tasks exist in both engines (PyBullet is the independent second engine used as a
stand-in reality); Grasp is MuJoCo-only. Imports happen here, on make, never on
``import simenvs``.
"""

from __future__ import annotations

import importlib
from typing import Any

ENGINES = ("mujoco", "pybullet")

_CLASSES = {
    ("DroneRace", "mujoco"): "simenvs.envs.drone_race.env:DroneRaceEnv",
    ("DroneRace", "pybullet"): "simenvs.pybullet.drone_race:PyBulletDroneRaceEnv",
    ("RooftopLanding", "mujoco"): "simenvs.envs.rooftop_landing.env:RooftopLandingEnv",
    ("RooftopLanding", "pybullet"): "simenvs.pybullet.rooftop_landing:PyBulletRooftopLandingEnv",
}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def env_class(task: str, engine: str = "mujoco") -> type:
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; allowed: {list(ENGINES)}")
    key = (task, engine)
    if key not in _CLASSES:
        engines = [e for (t, e) in _CLASSES if t == task]
        raise ValueError(f"{task} is not available with engine {engine!r}; engines: {engines}")
    return _load(_CLASSES[key])


def make_drone_race(engine: str = "mujoco", **kwargs: Any):
    return env_class("DroneRace", engine)(**kwargs)


def make_rooftop_landing(engine: str = "mujoco", **kwargs: Any):
    return env_class("RooftopLanding", engine)(**kwargs)


# gymnasium reads render modes from the creator's metadata
make_drone_race.metadata = make_rooftop_landing.metadata = {  # type: ignore[attr-defined]
    "render_modes": ["rgb_array", "depth_array"],
}
