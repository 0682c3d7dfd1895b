"""Parallel workers: the natively batched vector env, its SB3 adapter, process vector envs and
rollout executors (local, processes, batched, Ray).

- ``BatchedVectorEnv``: N sims of one task in one process, on one ``mujoco.batch.Batch`` for
  tasks with a vectorized fast path (Gymnasium ``VectorEnv``; the ``vector_entry_point`` of
  the simenvs ids, see ``simenvs.vector.entry``).
- ``BatchOps``: the optional vectorized fast path a task can provide (``simenvs.vector.ops``).
- ``BatchedVecEnv`` / ``make_batched_vec_env``: the same for Stable-Baselines3.
- ``make_vector_env`` / ``make_sb3_vec_env`` / ``EnvFn``: batched, sync or process workers.
- ``ProcessPoolVectorEnv``: K worker processes with M envs each (one message per worker per
  step, shared-memory actions and observations).
- ``ProcessExecutor`` / ``BatchedExecutor`` / ``RayExecutor``: SimOpt's ``Executor`` protocol.

Submodules import lazily: ``import simenvs.vector`` costs nothing until a name is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BatchedVectorEnv",
    "BatchOps",
    "BatchedVecEnv",
    "make_batched_vec_env",
    "make_vector_env",
    "make_sb3_vec_env",
    "EnvFn",
    "ProcessExecutor",
    "BatchedExecutor",
    "RayExecutor",
    "WorkerDiedError",
    "make_executor",
    "summarize",
    "ProcessPoolVectorEnv",
]

_WHERE = {
    "BatchedVectorEnv": "batched",
    "BatchOps": "ops",
    "BatchedVecEnv": "sb3",
    "make_batched_vec_env": "sb3",
    "make_vector_env": "workers",
    "make_sb3_vec_env": "workers",
    "EnvFn": "workers",
    "ProcessExecutor": "executor",
    "BatchedExecutor": "executor",
    "RayExecutor": "executor",
    "WorkerDiedError": "executor",
    "make_executor": "executor",
    "summarize": "executor",
    "ProcessPoolVectorEnv": "pool",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"simenvs.vector.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'simenvs.vector' has no attribute {name!r}")
