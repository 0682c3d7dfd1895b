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


def quad_env_rate(env: Any, seconds: float) -> tuple[float, float]:
    """Env steps per CPU/wall second of a quadrotor env under hover plus small noise (long
    episodes, like a policy that mostly flies)."""
    import numpy as np

    hover = env.unwrapped.hover_action()
    rng = np.random.default_rng(0)
    acts = np.clip(hover + 0.05 * rng.standard_normal((4096, 4)), -1, 1).astype(np.float32)
    env.reset(seed=0)
    i = 0

    def step() -> None:
        nonlocal i
        _, _, term, trunc, _ = env.step(acts[i & 4095])
        i += 1
        if term or trunc:
            env.reset()

    return cpu_rate(step, seconds, 200)


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
