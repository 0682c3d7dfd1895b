"""Scripted experts: privileged controllers that prove each task is solvable.

Each env class names its expert with ``expert_entry_point = "module:Class"``; ``make(env)``
builds it. An expert's ``act(obs)`` returns an action in the env's action space and may read
privileged state from ``env.unwrapped``; ``reset()`` is called after each ``env.reset``.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import gymnasium as gym
import numpy as np


class Expert(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: Any) -> np.ndarray: ...


def make(env: gym.Env) -> Expert:
    """Build the scripted expert for ``env`` (a wrapped or bare simenvs env)."""
    base = env.unwrapped
    entry = getattr(type(base), "expert_entry_point", None)
    if not entry:
        raise ValueError(f"{type(base).__name__} has no scripted expert (no expert_entry_point)")
    module, _, name = entry.partition(":")
    return getattr(importlib.import_module(module), name)(base)
