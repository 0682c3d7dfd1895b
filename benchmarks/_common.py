"""Shared helpers for benchmark scripts: timing, machine description, JSON results."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def rate(fn: Callable[[], Any], min_time: float = 1.0, min_calls: int = 20) -> float:
    """Calls per second of ``fn``: repeated until ``min_time`` seconds and ``min_calls`` calls."""
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time and n >= min_calls:
            return n / dt


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "processor": platform.processor() or platform.machine(),
    }


def write(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "time": time.strftime("%F %T"), **payload}
    path.write_text(json.dumps(payload, indent=2, default=float))
    print(f"wrote {path}")
    return path


def cpu_rate(fn: Callable[[], Any], seconds: float, min_calls: int) -> tuple[float, float]:
    """(calls per CPU second of this process, calls per wall second). CPU time is the
    one-core figure that other jobs on a shared machine disturb least."""
    fn()
    n, c0, w0 = 0, time.process_time(), time.perf_counter()
    while True:
        fn()
        n += 1
        w = time.perf_counter() - w0
        if w >= seconds and n >= min_calls:
            return n / (time.process_time() - c0), n / w


def physics_rate(m: Any, d: Any, seconds: float, nstep: int = 5) -> tuple[float, float]:
    """``mj_step`` substeps per CPU/wall second from the current state, ``nstep`` per call as
    an env steps them, the state restored every 48 calls: a flying quad keeps flying instead
    of drifting onto a roof (or through the floor) during the timing window."""
    import mujoco
    import numpy as np

    kind = mujoco.mjtState.mjSTATE_INTEGRATION
    s0 = np.empty(mujoco.mj_stateSize(m, kind))
    mujoco.mj_getState(m, d, s0, kind)

    def run() -> None:
        mujoco.mj_setState(m, d, s0, kind)
        for _ in range(48):
            mujoco.mj_step(m, d, nstep)

    cpu, wall = cpu_rate(run, seconds, 20)
    mujoco.mj_setState(m, d, s0, kind)
    return cpu * 48 * nstep, wall * 48 * nstep


def quad_env_rate(env: Any, seconds: float) -> tuple[float, float]:
    """Env steps per CPU/wall second of a quadrotor env under hover plus small noise (long
    episodes, like a policy that mostly flies); episodes reset as they end."""
    r = quad_env_rates(env, seconds)
    return r["cpu"], r["wall"]


def quad_env_rates(env: Any, seconds: float) -> dict[str, float]:
    """``quad_env_rate`` with its parts: ``cpu``/``wall`` (env steps per second, resets
    included), ``cpu_steps_only`` (the same steps without the CPU time of their resets),
    ``reset_ms`` (CPU per reset) and ``episode_steps`` (mean length)."""
    import numpy as np

    u = env.unwrapped
    hover = u.hover_action()
    rng = np.random.default_rng(0)
    acts = np.clip(hover + 0.05 * rng.standard_normal((4096, 4)), -1, 1).astype(np.float32)
    env.reset(seed=0)
    i = 0
    resets, reset_cpu = 0, 0.0

    def step() -> None:
        nonlocal i, resets, reset_cpu
        _, _, term, trunc, _ = env.step(acts[i & 4095])
        i += 1
        if term or trunc:
            c = time.process_time()
            env.reset()
            reset_cpu += time.process_time() - c
            resets += 1

    c0 = time.process_time()
    cpu, wall = cpu_rate(step, seconds, 200)
    cpu_s = time.process_time() - c0
    n = i
    return {
        "cpu": cpu,
        "wall": wall,
        "cpu_steps_only": n / max(cpu_s - reset_cpu, 1e-9),
        "reset_ms": 1e3 * reset_cpu / resets if resets else float("nan"),
        "episode_steps": n / resets if resets else float(n),
    }


def expert_success(env: Any, seeds: int) -> float:
    """Fraction of ``seeds`` episodes the env's scripted expert completes."""
    from simenvs.agents.experts import make as make_expert

    expert = make_expert(env)
    wins = 0
    for s in range(seeds):
        obs, _ = env.reset(seed=s)
        expert.reset()
        while True:
            obs, _, term, trunc, info = env.step(expert.act(obs))
            if term or trunc:
                break
        wins += bool(info["is_success"])
    return wins / seeds
