"""Process and in-process vector envs of simenvs envs (Gymnasium and SB3).

Workers started with ``forkserver`` or ``spawn`` (SB3's ``SubprocVecEnv`` default, Gymnasium's
``AsyncVectorEnv(context=...)``) begin from a fresh interpreter where no simenvs id is
registered: Gymnasium 1.x has no plugin auto-import. ``EnvFn`` is the picklable constructor
that imports ``simenvs`` before ``gym.make``, or builds a task from ``"module:Class"``.
Spec changes at run time go through the workers' own env methods:
``venv.call("set_randomization", spec)`` (Gymnasium) or ``venv.env_method(...)`` (SB3).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

__all__ = ["EnvFn", "make_vector_env", "make_sb3_vec_env", "VECTOR_MODES", "SB3_MODES"]

VECTOR_MODES = ("batched", "sync", "async")
SB3_MODES = ("batched", "dummy", "subproc")


@dataclass(frozen=True)
class EnvFn:
    """Picklable env constructor: ``EnvFn("simenvs/Grasp-v0", {...})()`` or
    ``EnvFn("simenvs.core.example:ToyPushEnv")()`` (a class or factory by import path)."""

    env: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self) -> gym.Env:
        import simenvs  # noqa: F401  (registers the simenvs ids in this process)

        target = _target(self.env)
        if not isinstance(target, str):
            return target(**dict(self.kwargs))
        return gym.make(self.env, **dict(self.kwargs))


def make_vector_env(
    env: str, num_envs: int, mode: str = "batched", **kwargs: Any
) -> gym.vector.VectorEnv:
    """A Gymnasium vector env: ``batched`` (one process, ``mujoco.batch``), ``sync`` (a loop
    in this process) or ``async`` (one worker process per env; ``context`` picks the start
    method, forkserver by default; ``envs_per_worker=M`` puts M envs in each process, a
    ``ProcessPoolVectorEnv``). ``kwargs`` go to the env (and, for batched, to
    ``BatchedVectorEnv``)."""
    if mode not in VECTOR_MODES:
        raise ValueError(f"unknown vector mode {mode!r}; allowed: {list(VECTOR_MODES)}")
    if mode == "batched":
        from simenvs.vector.batched import BatchedVectorEnv

        return BatchedVectorEnv(_target(env), num_envs, **kwargs)
    # forkserver by default: a forked child of a process that holds a GL context (any env
    # that rendered) can deadlock in EGL; a fresh interpreter also proves simenvs imports itself
    context = kwargs.pop("context", "forkserver")
    per_worker = kwargs.pop("envs_per_worker", None)
    if mode == "async" and per_worker is not None and int(per_worker) > 1:
        from simenvs.vector.pool import ProcessPoolVectorEnv

        if num_envs % int(per_worker):
            raise ValueError(
                f"num_envs={num_envs} is not a multiple of envs_per_worker={per_worker}"
            )
        k = num_envs // int(per_worker)
        return ProcessPoolVectorEnv(env, k, int(per_worker), context=context, **kwargs)
    fns = [EnvFn(env, kwargs) for _ in range(num_envs)]
    if mode == "sync":
        return gym.vector.SyncVectorEnv(fns)
    return gym.vector.AsyncVectorEnv(fns, context=context)


def make_sb3_vec_env(env: str, n_envs: int, mode: str = "batched", **kwargs: Any):
    """An SB3 ``VecEnv``: ``batched`` (``BatchedVecEnv``), ``dummy`` or ``subproc``
    (``start_method`` picks forkserver/spawn/fork)."""
    if mode not in SB3_MODES:
        raise ValueError(f"unknown SB3 vec mode {mode!r}; allowed: {list(SB3_MODES)}")
    if mode == "batched":
        from simenvs.vector.sb3 import make_batched_vec_env

        return make_batched_vec_env(_target(env), n_envs, **kwargs)
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    start_method = kwargs.pop("start_method", None)
    fns = [EnvFn(env, kwargs) for _ in range(n_envs)]
    if mode == "dummy":
        return DummyVecEnv(fns)
    return SubprocVecEnv(fns, start_method=start_method)


def _target(env: str) -> Any:
    """The class or factory behind ``"module:Class"``; an env id is returned as is
    (Gymnasium's own ``"module:Env-v0"`` ids included)."""
    mod, sep, name = env.partition(":")
    if sep and name.isidentifier() and env not in gym.registry:
        return getattr(importlib.import_module(mod), name)
    return env
