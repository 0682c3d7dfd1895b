"""``ProcessPoolVectorEnv``: a Gymnasium vector env of K worker processes with M envs each.

Gymnasium's ``AsyncVectorEnv`` (and SB3's ``SubprocVecEnv``) run one env per process: every
step is a pipe round trip per env, and for a cheap state-observation env (a quadrotor step is
~0.15 ms) that round trip and the parent's bookkeeping cost as much as the step, so two workers
are far from twice one. Here each worker steps a group of envs in its own loop (a Gymnasium
``SyncVectorEnv``, same autoreset and info semantics) or a ``BatchedVectorEnv``, and the
parent exchanges one message per worker per step; actions and observations go through shared
memory. Workers pin BLAS/OpenMP thread pools to one thread (``OMP_NUM_THREADS``... set before
they import numpy), so K workers use K cores.

    venv = ProcessPoolVectorEnv("simenvs/DroneRace-v0", num_workers=2, envs_per_worker=16,
                                obs_mode="state")

Observations, rewards, terminations and truncations equal a ``SyncVectorEnv`` of the same
envs and seeds (worker k holds envs ``k*M .. k*M+M-1``, seeded ``seed + index``); infos are
merged into one vector info dict. A worker that dies raises ``WorkerDiedError``; ``call``
reaches every env (spec changes at run time).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

__all__ = ["ProcessPoolVectorEnv", "THREAD_VARS"]

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class _SyncEnv(gym.vector.SyncVectorEnv):
    """SyncVectorEnv whose info batching accepts per-episode arrays of varying shape
    (RooftopLanding's maps), as ``BatchedVectorEnv`` does."""

    def _add_info(self, vector_infos, env_info, env_num):
        from simenvs.vector.batched import BatchedVectorEnv

        return BatchedVectorEnv._add_info(self, vector_infos, env_info, env_num)


def _worker(pipe, env: str, kwargs: dict, m: int, first: int, inner: str, shm: dict) -> None:
    """Worker loop: build M envs, then serve step / reset / call / close messages."""
    try:
        from simenvs.vector.workers import EnvFn, _target

        if inner == "batched":
            from simenvs.vector.batched import BatchedVectorEnv

            venv = BatchedVectorEnv(_target(env), m, nthread=1, **kwargs)
        else:
            venv = _SyncEnv([EnvFn(env, kwargs) for _ in range(m)])
        act = np.frombuffer(shm["act"], dtype=np.float64).reshape(shm["act_shape"])
        obs = np.frombuffer(shm["obs"], dtype=shm["obs_dtype"]).reshape(shm["obs_shape"])
        rows = slice(first, first + m)
        pipe.send(("ready", None))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        pipe.send(("error", f"{type(e).__name__}: {e}"))
        return
    while True:
        cmd, arg = pipe.recv()
        try:
            if cmd == "step":
                o, r, te, tr, info = venv.step(act[rows])
                obs[rows] = o
                pipe.send(("ok", (r, te, tr, info)))
            elif cmd == "reset":
                seed, options = arg
                o, info = venv.reset(seed=seed, options=options)
                obs[rows] = o
                pipe.send(("ok", info))
            elif cmd == "call":
                name, args, kw = arg
                pipe.send(("ok", venv.call(name, *args, **kw)))
            elif cmd == "close":
                venv.close()
                pipe.send(("ok", None))
                return
        except Exception as e:  # noqa: BLE001 - reported to the parent
            pipe.send(("error", f"{type(e).__name__}: {e}"))


class ProcessPoolVectorEnv(VectorEnv):
    """K processes x M envs of one simenvs id (see the module docstring).

    Args:
        env: env id (``"simenvs/DroneRace-v0"``) or ``"module:Class"``.
        num_workers: worker processes (K).
        envs_per_worker: envs in each worker (M); ``num_envs = K * M``.
        inner: ``"sync"`` (a loop of single envs per worker) or ``"batched"``
            (a ``BatchedVectorEnv`` of M sims on one thread per worker).
        context: multiprocessing start method (forkserver: a forked child of a process that
            holds a GL context can deadlock in EGL).
        **kwargs: passed to every env.
    """

    def __init__(
        self,
        env: str,
        num_workers: int = 2,
        envs_per_worker: int = 1,
        *,
        inner: str = "sync",
        context: str = "forkserver",
        **kwargs: Any,
    ):
        if int(num_workers) < 1 or int(envs_per_worker) < 1:
            raise ValueError(
                f"num_workers and envs_per_worker must be >= 1, got {num_workers}, "
                f"{envs_per_worker}"
            )
        if inner not in ("sync", "batched"):
            raise ValueError(f"inner must be 'sync' or 'batched', got {inner!r}")
        from simenvs.vector.workers import EnvFn

        self.num_workers, self.envs_per_worker = int(num_workers), int(envs_per_worker)
        self.num_envs = self.num_workers * self.envs_per_worker
        probe = EnvFn(env, kwargs)()
        self.single_observation_space = probe.observation_space
        self.single_action_space = probe.action_space
        self.metadata = {**probe.metadata, "autoreset_mode": AutoresetMode.NEXT_STEP}
        self.autoreset_mode = AutoresetMode.NEXT_STEP  # the workers' SyncVectorEnv default
        self.render_mode = None
        probe.close()
        if not isinstance(self.single_observation_space, gym.spaces.Box):
            raise TypeError("ProcessPoolVectorEnv supports Box observations only")
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        n = self.num_envs
        obs_shape = (n, *self.single_observation_space.shape)
        act_shape = (n, *self.single_action_space.shape)
        odt = np.dtype(self.single_observation_space.dtype)
        ctx = mp.get_context(context)
        for v in THREAD_VARS:  # the forkserver (started on first use) passes these on
            os.environ.setdefault(v, "1")
        shm = {
            "act": ctx.RawArray("b", int(np.prod(act_shape)) * 8),
            "obs": ctx.RawArray("b", int(np.prod(obs_shape)) * odt.itemsize),
            "act_shape": act_shape,
            "obs_shape": obs_shape,
            "obs_dtype": odt.str,
        }
        self._act = np.frombuffer(shm["act"], dtype=np.float64).reshape(act_shape)
        self._obs = np.frombuffer(shm["obs"], dtype=odt).reshape(obs_shape)
        self._pipes, self.processes = [], []
        m = self.envs_per_worker
        for k in range(self.num_workers):
            parent, child = ctx.Pipe()
            p = ctx.Process(
                target=_worker, args=(child, env, dict(kwargs), m, k * m, inner, shm), daemon=True
            )
            p.start()
            child.close()
            self._pipes.append(parent)
            self.processes.append(p)
        self._gather("starting")
        self._closed = False

    # ---- messaging ----------------------------------------------------------------------
    def _send(self, cmd: str, arg: Any = None) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):  # a dead worker: _gather names it
                pipe.send((cmd, arg))

    def _gather(self, what: str) -> list[Any]:
        from simenvs.vector.executor import WorkerDiedError

        out = []
        for k, (pipe, proc) in enumerate(zip(self._pipes, self.processes)):
            died = WorkerDiedError(f"worker {k} (pid {proc.pid}) died while {what}")
            try:
                while not pipe.poll(1.0):
                    if not proc.is_alive():
                        raise died
                status, payload = pipe.recv()
            except (EOFError, OSError):
                raise died from None
            if status == "error":
                raise RuntimeError(f"worker {k} failed while {what}: {payload}")
            out.append(payload)
        return out

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        m = self.envs_per_worker
        for k, pipe in enumerate(self._pipes):
            s = None if seed is None else [int(seed) + k * m + i for i in range(m)]
            pipe.send(("reset", (s, options)))
        infos = self._gather("resetting")
        return self._obs.copy(), self._merge(infos)

    def step(self, actions: Any):
        a = np.asarray(actions, dtype=np.float64)
        self._act[:] = a.reshape(self._act.shape)
        self._send("step")
        res = self._gather("stepping")
        r = np.concatenate([x[0] for x in res])
        te = np.concatenate([x[1] for x in res])
        tr = np.concatenate([x[2] for x in res])
        return self._obs.copy(), r, te, tr, self._merge([x[3] for x in res])

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        self._send("call", (name, args, kwargs))
        return tuple(x for part in self._gather(f"calling {name}") for x in part)

    def close_extras(self, **kwargs: Any) -> None:
        if getattr(self, "_closed", True):
            return
        self._closed = True
        try:
            self._send("close")
            self._gather("closing")
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        for p in self.processes:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()

    def _merge(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """One vector info dict from the workers' (rows ``k*M ..``), as if one env had all."""
        m, n = self.envs_per_worker, self.num_envs
        out: dict[str, Any] = {}
        for k, info in enumerate(parts):
            _merge_into(out, info, slice(k * m, (k + 1) * m), n)
        return out


def _merge_into(out: dict[str, Any], info: dict[str, Any], rows: slice, n: int) -> None:
    for key, val in info.items():
        if isinstance(val, dict):
            _merge_into(out.setdefault(key, {}), val, rows, n)
            continue
        val = np.asarray(val)
        cur = out.get(key)
        if cur is None:
            fill = None if val.dtype == object else 0
            cur = np.full((n, *val.shape[1:]), fill, dtype=val.dtype)
        elif cur.shape[1:] != val.shape[1:] or (cur.dtype != val.dtype and key[0] != "_"):
            obj = np.full(n, None, dtype=object)  # shapes or types differ between workers
            obj[:] = list(cur) if cur.ndim > 1 else cur
            cur = obj
            val = np.array(list(val) if val.ndim > 1 else val, dtype=object)
        cur[rows] = val
        out[key] = cur
