"""Rollout/evaluation executors: run ``(task, jobs) -> episodes`` here, in processes, batched,
or on a Ray cluster.

They implement SimOpt's ``Executor`` protocol (``simenvs.simopt.rollout``): a ``RolloutTask``
says what every job shares (env id or factory, env kwargs, policy factory, fixed params), a
``Job`` is one episode (params overrides, seed, step limit, optional replay), and the result
is one ``Episode`` (observations, actions, rewards, success...) per job, in job order.
Every backend returns the same episodes as ``LocalExecutor`` for the same jobs
(``tests/test_executor.py``), given a deterministic policy (one whose actions depend only on
its observations since its ``reset``):

- ``LocalExecutor`` (SimOpt's): one env, jobs one after another.
- ``ProcessExecutor(n_workers)``: a persistent pool of worker processes (forkserver), each
  running a contiguous chunk of jobs with ``RolloutTask.run_many``.
- ``BatchedExecutor(max_envs, nthread)``: jobs become sims of one ``BatchedVectorEnv`` whose
  physics steps on ``mujoco.batch``'s thread pool; the policies run per sim in Python.
- ``RayExecutor(address=None, inner="local"|"batched")``: chunks become Ray tasks, locally
  (``ray.init(num_cpus=...)``) or on a cluster (``address="ray://..."`` or ``"auto"``); each
  chunk runs with the inner backend on its worker.

A worker that dies (killed, out of memory, ``os._exit``) raises ``WorkerDiedError`` in the
caller, naming the jobs it was running; nothing hangs (``timeout_s`` bounds a stuck worker).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import math
import multiprocessing as mp
from collections.abc import Sequence
from typing import Any

import numpy as np

from simenvs.simopt.rollout import Job, LocalExecutor, RolloutTask, _episode

__all__ = [
    "WorkerDiedError",
    "LocalExecutor",
    "ProcessExecutor",
    "BatchedExecutor",
    "RayExecutor",
    "make_executor",
    "summarize",
    "EXECUTORS",
]

EXECUTORS = ("local", "process", "batched", "ray")


class WorkerDiedError(RuntimeError):
    """A rollout worker died before returning its episodes."""


def _chunks(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``parts`` contiguous, nearly equal slices."""
    parts = max(1, min(parts, n))
    size = math.ceil(n / parts)
    return [(a, min(a + size, n)) for a in range(0, n, size)]


def summarize(episodes: Sequence[Any]) -> dict[str, Any]:
    """Returns, lengths and success rate of a list of ``Episode``."""
    returns = np.array([float(np.sum(e.rewards)) for e in episodes])
    lengths = np.array([len(e.actions) for e in episodes])
    succ = [e.success for e in episodes if e.success is not None]
    return {
        "episodes": len(episodes),
        "return_mean": float(returns.mean()) if len(returns) else float("nan"),
        "return_std": float(returns.std()) if len(returns) else float("nan"),
        "length_mean": float(lengths.mean()) if len(lengths) else float("nan"),
        "success_rate": float(np.mean(succ)) if succ else None,
        "returns": returns.tolist(),
    }


# ---- processes ----------------------------------------------------------------------------
def _run_chunk(task: RolloutTask, jobs: Sequence[Job], inner: str = "local") -> list[Any]:
    """Worker entry: one chunk of jobs with the inner backend (module level: picklable)."""
    if inner == "batched":
        return _worker_batched()(task, jobs)
    return task.run_many(jobs)


_WORKER_BATCHED: BatchedExecutor | None = None


def _worker_batched() -> BatchedExecutor:
    global _WORKER_BATCHED
    if _WORKER_BATCHED is None:
        _WORKER_BATCHED = BatchedExecutor()
    return _WORKER_BATCHED


class ProcessExecutor:
    """Jobs split over ``n_workers`` processes that persist across calls (each keeps its env
    and policy between calls with the same ``RolloutTask``). ``start_method``: forkserver
    (default) or spawn; workers import simenvs themselves."""

    def __init__(
        self,
        n_workers: int = 2,
        start_method: str = "forkserver",
        inner: str = "local",
        timeout_s: float | None = None,
    ):
        if int(n_workers) < 1:
            raise ValueError(f"n_workers must be >= 1, got {n_workers!r}")
        if start_method not in mp.get_all_start_methods():
            raise ValueError(
                f"unknown start_method {start_method!r}; allowed: {mp.get_all_start_methods()}"
            )
        if inner not in ("local", "batched"):
            raise ValueError(f"inner must be 'local' or 'batched', got {inner!r}")
        self.n_workers = int(n_workers)
        self.start_method = start_method
        self.inner = inner
        self.timeout_s = timeout_s
        self._pool: cf.ProcessPoolExecutor | None = None

    def _get_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                self.n_workers, mp_context=mp.get_context(self.start_method)
            )
        return self._pool

    def __call__(self, task: RolloutTask, jobs: Sequence[Job]) -> list[Any]:
        jobs = list(jobs)
        if not jobs:
            return []
        pool = self._get_pool()
        spans = _chunks(len(jobs), self.n_workers)
        futures = [pool.submit(_run_chunk, task, jobs[a:b], self.inner) for a, b in spans]
        out: list[Any] = []
        a, b = spans[0]
        try:
            for fut, span in zip(futures, spans):
                a, b = span
                out += fut.result(timeout=self.timeout_s)
        except cf.process.BrokenProcessPool as e:
            self.close(broken=True)
            raise WorkerDiedError(
                f"a rollout worker process died while running jobs {a}..{b - 1} of {len(jobs)} "
                f"(killed, out of memory or exited): {e}. The pool was shut down; the next call "
                "starts new workers."
            ) from e
        except cf.TimeoutError as e:
            self.close(broken=True)
            raise WorkerDiedError(
                f"jobs {a}..{b - 1} did not finish within timeout_s={self.timeout_s}; the pool "
                "was shut down"
            ) from e
        return out

    def close(self, broken: bool = False) -> None:
        if self._pool is not None:
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            self._pool.shutdown(wait=not broken, cancel_futures=True)
            if broken:  # stop stuck workers so nothing lingers
                for p in procs:
                    if p.is_alive():
                        p.terminate()
                        p.join(timeout=5)
            self._pool = None

    def __enter__(self) -> ProcessExecutor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()


# ---- batched --------------------------------------------------------------------------------
class BatchedExecutor:
    """Closed-loop jobs as the sims of one ``BatchedVectorEnv`` (waves of ``max_envs``).

    Open-loop replay jobs run through ``RolloutTask.run_many`` here. The vector env is kept
    across calls with the same task (``RolloutTask.token``).
    """

    def __init__(self, max_envs: int = 64, nthread: int | None = None, **vector_kwargs: Any):
        if int(max_envs) < 1:
            raise ValueError(f"max_envs must be >= 1, got {max_envs!r}")
        self.max_envs = int(max_envs)
        self.nthread = nthread
        self.vector_kwargs = vector_kwargs
        self._key: tuple | None = None
        self._venv: Any = None
        self._policies: list[Any] = []

    def _vector_env(self, task: RolloutTask, n: int) -> Any:
        from simenvs.vector.batched import BatchedVectorEnv

        key = (task.token, n)
        if self._key != key:
            if self._venv is not None:
                self._venv.close()
            self._venv = BatchedVectorEnv(
                task.env,
                n,
                nthread=self.nthread,
                autoreset_mode="Disabled",
                **self.vector_kwargs,
                **task.env_kwargs,
            )
            self._policies = [task.policy(e) for e in self._venv.envs] if task.policy else []
            self._key = key
        return self._venv

    def __call__(self, task: RolloutTask, jobs: Sequence[Job]) -> list[Any]:
        jobs = list(jobs)
        out: list[Any] = [None] * len(jobs)
        loop = [k for k, j in enumerate(jobs) if j.replay is None]
        replay = [k for k, j in enumerate(jobs) if j.replay is not None]
        if replay:
            for k, ep in zip(replay, task.run_many([jobs[k] for k in replay])):
                out[k] = ep
        if loop and task.policy is None:
            raise ValueError("closed-loop jobs need a policy factory in the RolloutTask")
        if loop:
            n = min(self.max_envs, len(loop))
            venv = self._vector_env(task, n)
            for a in range(0, len(loop), n):
                wave = loop[a : a + n]
                for k, ep in zip(wave, self._wave(task, venv, [jobs[k] for k in wave])):
                    out[k] = ep
        return out

    def _wave(self, task: RolloutTask, venv: Any, jobs: list[Job]) -> list[Any]:
        from simenvs.data import obs_vector

        m = len(jobs)
        ids = np.arange(m)
        opts = [{"params": {**task.fixed_params, **j.params}} for j in jobs]
        obs, _ = venv.reset_subset(ids, [j.seed for j in jobs], opts)
        envs = venv.envs
        pols = self._policies
        for i in range(m):
            if hasattr(pols[i], "reset"):
                pols[i].reset()
        rec_obs = [[obs_vector(envs[i], obs[i], task.obs_key)] for i in range(m)]
        rec_act: list[list[np.ndarray]] = [[] for _ in range(m)]
        rec_rew: list[list[float]] = [[] for _ in range(m)]
        success: list[bool | None] = [None] * m
        term = np.zeros(m, dtype=bool)
        trunc = np.zeros(m, dtype=bool)
        limits = [j.max_steps if j.max_steps is not None else np.inf for j in jobs]
        active = [i for i in range(m) if limits[i] > 0]
        cur = list(obs)
        while active:
            acts = [np.asarray(pols[i].act(cur[i])) for i in active]
            o, r, te, tr, infos = venv.step_subset(active, acts)
            succ, smask = infos.get("is_success"), infos.get("_is_success")
            still = []
            for j, i in enumerate(active):
                cur[i] = o[j]
                rec_act[i].append(acts[j].astype(np.float64).reshape(-1))
                rec_obs[i].append(obs_vector(envs[i], o[j], task.obs_key))
                rec_rew[i].append(float(r[j]))
                if succ is not None and smask[i]:
                    success[i] = bool(succ[i])
                term[i], trunc[i] = bool(te[j]), bool(tr[j])
                if not (te[j] or tr[j]) and len(rec_act[i]) < limits[i]:
                    still.append(i)
            active = still
        return [
            _episode(
                envs[i], rec_obs[i], rec_act[i], rec_rew[i], success[i], term[i], trunc[i], jobs[i]
            )  # fmt: skip
            for i in range(m)
        ]

    def close(self) -> None:
        if self._venv is not None:
            self._venv.close()
            self._venv = None
            self._key = None


# ---- ray ------------------------------------------------------------------------------------
class RayExecutor:
    """Chunks of jobs as Ray tasks (see the module docstring).

    ``address``: None starts (or joins) a local Ray with ``num_cpus``; ``"auto"`` or
    ``"ray://host:10001"`` joins a cluster. ``chunks``: tasks per call (default: the cluster's
    CPUs). ``max_retries=0``: a dead worker is an error, not a silent re-run.
    ``runtime_env`` is passed to ``ray.init`` (e.g. ``{"py_modules": [...]}`` so workers can
    import code the cluster lacks).
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        chunks: int | None = None,
        inner: str = "local",
        max_retries: int = 0,
        timeout_s: float | None = None,
        runtime_env: dict | None = None,
    ):
        if inner not in ("local", "batched"):
            raise ValueError(f"inner must be 'local' or 'batched', got {inner!r}")
        import ray

        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if runtime_env:
                kwargs["runtime_env"] = runtime_env
            if address is None:
                ray.init(num_cpus=num_cpus, **kwargs)
            else:
                ray.init(address=address, **kwargs)
        self.chunks = chunks
        self.inner = inner
        self.timeout_s = timeout_s
        self._remote = ray.remote(max_retries=int(max_retries))(_run_chunk)

    def __call__(self, task: RolloutTask, jobs: Sequence[Job]) -> list[Any]:
        ray = self._ray
        jobs = list(jobs)
        if not jobs:
            return []
        parts = self.chunks or max(1, int(ray.cluster_resources().get("CPU", 1)))
        spans = _chunks(len(jobs), parts)
        task_ref = ray.put(task)
        refs = [self._remote.remote(task_ref, jobs[a:b], self.inner) for a, b in spans]
        out: list[Any] = []
        for ref, (a, b) in zip(refs, spans):
            try:
                out += ray.get(ref, timeout=self.timeout_s)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as e:
                for r in refs:
                    ray.cancel(r, force=True)
                raise WorkerDiedError(
                    f"a Ray worker died while running jobs {a}..{b - 1} of {len(jobs)}: {e}"
                ) from e
            except ray.exceptions.GetTimeoutError as e:
                for r in refs:
                    ray.cancel(r, force=True)
                raise WorkerDiedError(
                    f"jobs {a}..{b - 1} did not finish within timeout_s={self.timeout_s}"
                ) from e
        return out

    @staticmethod
    def shutdown() -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def make_executor(kind: str = "local", **kwargs: Any) -> Any:
    """``local`` | ``process`` | ``batched`` | ``ray`` executor with its own options."""
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(**kwargs)
    if kind == "batched":
        return BatchedExecutor(**kwargs)
    if kind == "ray":
        return RayExecutor(**kwargs)
    raise ValueError(f"unknown executor {kind!r}; allowed: {list(EXECUTORS)}")
