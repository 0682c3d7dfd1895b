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
