"""Env throughput of the drone tasks in both engines: the PyBullet half of the transfer benchmark.

``measure_steps_per_second(task, engine)`` times one engine; ``compare_engines(task)`` times
both in one process, interleaved, so the ratio survives a noisy shared machine (DESIGN.md:
quote ratios measured in one run). Actions: hover, or a seeded random sequence that resets on
termination (each reset is counted in the time, as in training).
"""

from __future__ import annotations

import importlib
import time
from typing import Any

import numpy as np

__all__ = ["ENV_CLASSES", "make_env", "measure_steps_per_second", "compare_engines"]

ENV_CLASSES: dict[tuple[str, str], str] = {
    ("DroneRace", "mujoco"): "simenvs.envs.drone_race.env:DroneRaceEnv",
    ("DroneRace", "pybullet"): "simenvs.pybullet.drone_race:PyBulletDroneRaceEnv",
    ("RooftopLanding", "mujoco"): "simenvs.envs.rooftop_landing.env:RooftopLandingEnv",
    ("RooftopLanding", "pybullet"): "simenvs.pybullet.rooftop_landing:PyBulletRooftopLandingEnv",
}


def make_env(task: str, engine: str = "pybullet", **kwargs: Any) -> Any:
    """A bare (unwrapped) env of ``task`` ("DroneRace" | "RooftopLanding", or a
    ``simenvs/<Task>-v0`` id) in ``engine`` ("mujoco" | "pybullet")."""
    name = task.split("/")[-1].split("-")[0]
    key = (name, engine)
    if key not in ENV_CLASSES:
        raise ValueError(
            f"no env for task {task!r} and engine {engine!r}; choose from {sorted(ENV_CLASSES)}"
        )
    module, _, cls = ENV_CLASSES[key].partition(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


def _run(env: Any, n_steps: int, actions: np.ndarray | None, seed: int) -> tuple[float, int]:
    env.reset(seed=seed)
    hover = env.unwrapped.hover_action() if hasattr(env.unwrapped, "hover_action") else None
    resets = 0
    t0 = time.perf_counter()
    for k in range(n_steps):
        a = hover if actions is None else actions[k % len(actions)]
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
            resets += 1
    return time.perf_counter() - t0, resets


def _actions(env: Any, action: str, seed: int) -> np.ndarray | None:
    if action == "hover":
        return None
    if action != "random":
        raise ValueError(f"action must be 'hover' or 'random', got {action!r}")
    rng = np.random.default_rng(seed)
    hover = np.asarray(env.unwrapped.hover_action(), dtype=np.float64)
    return np.clip(hover + 0.3 * rng.standard_normal((512, hover.size)), -1.0, 1.0)


def measure_steps_per_second(
    task: str = "DroneRace",
    engine: str = "pybullet",
    n_steps: int = 2000,
    *,
    obs_mode: str = "state",
    action: str = "hover",
    seed: int = 0,
    warmup: int = 50,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Env steps per second of one engine: {"task", "engine", "obs_mode", "steps_per_s",
    "n_steps", "resets", "seconds"}."""
    env = make_env(task, engine, obs_mode=obs_mode, **env_kwargs)
    try:
        acts = _actions(env, action, seed)
        _run(env, warmup, acts, seed)
        sec, resets = _run(env, n_steps, acts, seed)
    finally:
        env.close()
    return {
        "task": task, "engine": engine, "obs_mode": obs_mode, "action": action,
        "steps_per_s": n_steps / sec, "n_steps": n_steps, "resets": resets, "seconds": sec,
    }  # fmt: skip


def compare_engines(
    task: str = "DroneRace",
    n_steps: int = 1000,
    repeats: int = 3,
    *,
    obs_mode: str = "state",
    action: str = "hover",
    seed: int = 0,
    **env_kwargs: Any,
) -> dict[str, Any]:
    """Both engines in one process, ``repeats`` interleaved rounds, best round of each:
    {"task", "obs_mode", "mujoco_steps_per_s", "pybullet_steps_per_s", "pybullet_over_mujoco"}."""
    envs = {e: make_env(task, e, obs_mode=obs_mode, **env_kwargs) for e in ("mujoco", "pybullet")}
    best = {e: 0.0 for e in envs}
    try:
        acts = {e: _actions(env, action, seed) for e, env in envs.items()}
        for env_name, env in envs.items():
            _run(env, 50, acts[env_name], seed)
        for _ in range(int(repeats)):
            for e, env in envs.items():
                sec, _ = _run(env, n_steps, acts[e], seed)
                best[e] = max(best[e], n_steps / sec)
    finally:
        for env in envs.values():
            env.close()
    return {
        "task": task, "obs_mode": obs_mode, "action": action, "n_steps": n_steps,
        "mujoco_steps_per_s": best["mujoco"], "pybullet_steps_per_s": best["pybullet"],
        "pybullet_over_mujoco": best["pybullet"] / best["mujoco"],
    }  # fmt: skip


if __name__ == "__main__":  # python -m simenvs.pybullet.bench
    import json

    out = [compare_engines("DroneRace"), compare_engines("RooftopLanding", n_steps=500)]
    out.append(compare_engines("DroneRace", n_steps=200, obs_mode="rgb"))
    print(json.dumps(out, indent=1))
