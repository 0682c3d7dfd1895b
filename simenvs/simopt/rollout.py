"""Simulated rollouts for SimOpt: jobs, the task that runs them, and the executor protocol.

A ``Job`` is (param dict, seed) plus, for offline/DROPO mode, the recorded episode to replay.
A ``RolloutTask`` is picklable data (env id or factory, policy factory, fixed params) whose
``run_many(jobs)`` builds the env once per process and returns one ``Episode`` per job. An
``Executor`` is any callable ``(task, jobs) -> episodes`` in job order: ``LocalExecutor`` runs
them here, one after another; a parallel or Ray executor only has to split the job list.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from simenvs.data import Episode, obs_vector, set_sim_state

__all__ = [
    "Policy",
    "PolicyFactory",
    "EnvFactory",
    "Replay",
    "Job",
    "RolloutTask",
    "Executor",
    "LocalExecutor",
    "make_env",
]


class Policy(Protocol):
    def reset(self) -> None: ...
    def act(self, obs: Any) -> np.ndarray: ...


PolicyFactory = Callable[[gym.Env], Policy]
EnvFactory = Callable[[], gym.Env]


def make_env(env: str | EnvFactory, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """Build an env from a registered id (importing ``simenvs`` first) or a factory."""
    if callable(env):
        return env(**dict(env_kwargs or {}))
    import simenvs  # noqa: F401  (registers the simenvs ids)

    return gym.make(env, **dict(env_kwargs or {}))


@dataclass
class Replay:
    """Open-loop replay of a recorded episode (offline, DROPO-style).

    The sim starts from ``sim_state[0]`` and applies ``actions``; with ``reset_every=k`` it is
    put back on the recorded state every k steps, so errors do not compound over long logs.
    ``state_setter(env, obs_row, sim_state_row)`` replaces the default MuJoCo state write
    (hardware logs have no sim state: map the measured observation to qpos/qvel there).
    """

    actions: np.ndarray
    obs: np.ndarray
    sim_state: np.ndarray | None = None
    sim_state_spec: int | None = None
    reset_every: int | None = None
    state_setter: Callable[[gym.Env, np.ndarray, np.ndarray | None], None] | None = None


@dataclass
class Job:
    """One simulated episode: params fixed for it, reset seed, step limit, optional replay."""

    params: dict[str, Any]
    seed: int | None = None
    max_steps: int | None = None
    replay: Replay | None = None


_ENV_CACHE: dict[str, tuple[gym.Env, Policy | None]] = {}


@dataclass
class RolloutTask:
    """What every job of one batch shares. Picklable when ``env`` and ``policy`` are ids or
    top-level callables. ``fixed_params`` are merged under each job's params (job wins)."""

    env: str | EnvFactory
    policy: PolicyFactory | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    fixed_params: dict[str, Any] = field(default_factory=dict)
    obs_key: str | None = None
    # Identifies this task across pickling: a worker keeps one env + policy per token and
    # rebuilds them when a new task (e.g. a retrained policy) arrives.
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def _env_and_policy(self) -> tuple[gym.Env, Policy | None]:
        k = self.token
        if k not in _ENV_CACHE:
            for old_env, _ in _ENV_CACHE.values():
                old_env.close()
            _ENV_CACHE.clear()
            env = make_env(self.env, self.env_kwargs)
            _ENV_CACHE[k] = (env, self.policy(env) if self.policy is not None else None)
        return _ENV_CACHE[k]

    def run_many(self, jobs: Sequence[Job]) -> list[Episode]:
        env, policy = self._env_and_policy()
        return [self.run_one(env, policy, job) for job in jobs]

    def run_one(self, env: gym.Env, policy: Policy | None, job: Job) -> Episode:
        params = {**self.fixed_params, **job.params}
        obs, info = env.reset(seed=job.seed, options={"params": params})
        if job.replay is not None:
            return self._replay(env, obs, job)
        if policy is None:
            raise ValueError("closed-loop jobs need a policy factory in the RolloutTask")
        if hasattr(policy, "reset"):
            policy.reset()
        obs_list, actions, rewards = [obs_vector(env, obs, self.obs_key)], [], []
        success, terminated, truncated = None, False, False
        limit = job.max_steps if job.max_steps is not None else np.inf
        while len(actions) < limit:
            action = np.asarray(policy.act(obs))
            obs, reward, terminated, truncated, info = env.step(action)
            actions.append(action.astype(np.float64).reshape(-1))
            obs_list.append(obs_vector(env, obs, self.obs_key))
            rewards.append(float(reward))
            if "is_success" in info:
                success = bool(info["is_success"])
            if terminated or truncated:
                break
        return _episode(env, obs_list, actions, rewards, success, terminated, truncated, job)

    def _replay(self, env: gym.Env, obs: Any, job: Job) -> Episode:
        rp = job.replay
        assert rp is not None
        n = len(rp.actions)

        def put(t: int) -> Any:
            row = None if rp.sim_state is None else rp.sim_state[t]
            if rp.state_setter is not None:
                rp.state_setter(env, rp.obs[t], row)
            elif row is not None:
                set_sim_state(env, row, rp.sim_state_spec)
            else:
                raise ValueError(
                    "replay needs recorded sim_state or a state_setter(env, obs, sim_state) that "
                    "maps a recorded observation to the simulator state"
                )

        put(0)
        obs_list = [np.asarray(rp.obs[0], dtype=np.float64)]
        rewards, success, terminated, truncated = [], None, False, False
        for t in range(n):
            if rp.reset_every and t > 0 and t % rp.reset_every == 0:
                put(t)
            obs, reward, terminated, truncated, info = env.step(rp.actions[t])
            obs_list.append(obs_vector(env, obs, self.obs_key))
            rewards.append(float(reward))
            if "is_success" in info:
                success = bool(info["is_success"])
            if terminated or truncated:
                break
        actions = [np.asarray(a, dtype=np.float64) for a in rp.actions[: len(obs_list) - 1]]
        return _episode(env, obs_list, actions, rewards, success, terminated, truncated, job)


def _episode(env, obs_list, actions, rewards, success, terminated, truncated, job) -> Episode:
    hz = getattr(env.unwrapped, "control_hz", None) or 1.0 / getattr(env.unwrapped, "dt", 1.0)
    a_dim = int(np.prod(env.action_space.shape or (1,)))
    return Episode(
        obs=np.stack(obs_list),
        actions=np.stack(actions) if actions else np.zeros((0, a_dim)),
        time=np.arange(len(obs_list), dtype=np.float64) / float(hz),
        rewards=np.asarray(rewards, dtype=np.float64),
        success=success,
        terminated=bool(terminated),
        truncated=bool(truncated),
        seed=job.seed,
        params=dict(job.params),
    )


class Executor(Protocol):
    """Runs ``task.run_many`` over ``jobs`` anywhere; returns episodes in job order."""

    def __call__(self, task: RolloutTask, jobs: Sequence[Job]) -> list[Episode]: ...


class LocalExecutor:
    """Sequential, in this process (the default; one env reused for all jobs)."""

    def __call__(self, task: RolloutTask, jobs: Sequence[Job]) -> list[Episode]:
        return task.run_many(jobs)
