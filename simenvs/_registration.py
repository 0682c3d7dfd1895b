"""Env ids provided by simenvs. Each entry point is a string, so registering imports nothing."""

from __future__ import annotations

import gymnasium as gym

# id -> (entry point, vector entry point or None, max_episode_steps)
ENVS: dict[str, tuple[str, str | None, int]] = {
    "simenvs/Grasp-v0": (
        "simenvs.envs.grasp.env:GraspEnv",
        "simenvs.vector.entry:Grasp_v0",
        100,
    ),
    "simenvs/DroneRace-v0": (
        "simenvs.envs.factory:make_drone_race",
        "simenvs.vector.entry:DroneRace_v0",
        1200,
    ),
    "simenvs/RooftopLanding-v0": (
        "simenvs.envs.factory:make_rooftop_landing",
        "simenvs.vector.entry:RooftopLanding_v0",
        1440,
    ),
}


def register_all() -> None:
    for env_id, (entry, vector_entry, steps) in ENVS.items():
        if env_id in gym.registry:
            continue
        kwargs = {"id": env_id, "entry_point": entry, "max_episode_steps": steps}
        if vector_entry:
            kwargs["vector_entry_point"] = vector_entry
        gym.register(**kwargs)
