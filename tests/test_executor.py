"""Rollout executors (issue 11): every backend returns LocalExecutor's episodes for the same
jobs, and a worker that dies raises WorkerDiedError in the caller instead of hanging."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from simenvs.simopt.rollout import Job, LocalExecutor, RolloutTask
from simenvs.simopt.toy import PointMassEnv, make_pd
from simenvs.vector.executor import (
    BatchedExecutor,
    ProcessExecutor,
    RayExecutor,
    WorkerDiedError,
    make_executor,
    summarize,
)


def _jobs(n: int = 8) -> list[Job]:
    rng = np.random.default_rng(0)
    jobs = [
        Job(
            params={
                "dynamics.mass": float(rng.uniform(0.5, 2.0)),
                "dynamics.gain": float(rng.uniform(3.0, 5.0)),
            },
            seed=100 + k,
        )
        for k in range(n)
    ]
    if n > 2:
        jobs[2].max_steps = 7
    return jobs


TASK = RolloutTask(env=PointMassEnv, policy=make_pd, env_kwargs={"randomization": "default"})


def assert_same_episodes(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for f in ("obs", "actions", "rewards", "time"):
            np.testing.assert_array_equal(getattr(x, f), getattr(y, f), err_msg=f)
        assert (x.success, x.terminated, x.truncated, x.seed, x.params) == (
            y.success,
            y.terminated,
            y.truncated,
            y.seed,
            y.params,
        )


@pytest.fixture(scope="module")
def reference():
    eps = LocalExecutor()(TASK, _jobs())
    # the jobs' dynamics differ, and so do the trajectories
    assert not np.array_equal(eps[0].obs[:20], eps[1].obs[:20])
    assert len(eps[2].actions) == 7 and len(eps[0].actions) == PointMassEnv.max_episode_steps
    assert summarize(eps)["success_rate"] > 0.5
    return eps


class _DiesAt:
    """A policy whose worker process exits abruptly at its 5th action."""

    def __init__(self, env):
        self.n = 0

    def reset(self):
        self.n = 0

    def act(self, obs):
        self.n += 1
        if self.n == 5:
            os._exit(3)
        return np.zeros(2, dtype=np.float32)


def _dies(env):
    return _DiesAt(env)


def test_batched_executor_equals_local(reference):
    ex = make_executor("batched", max_envs=3, nthread=2)
    assert_same_episodes(ex(TASK, _jobs()), reference)  # 3 waves
    assert_same_episodes(ex(TASK, _jobs()), reference)  # reused env, same results
    ex.close()


def test_process_executor_equals_local_and_reports_dead_worker(reference):
    with ProcessExecutor(n_workers=2) as ex:
        assert_same_episodes(ex(TASK, _jobs()), reference)
        dying = RolloutTask(env=PointMassEnv, policy=_dies)
        with pytest.raises(WorkerDiedError, match="died while running jobs"):
            ex(dying, _jobs(4))
        # the executor recovers with fresh workers
        assert_same_episodes(ex(TASK, _jobs()[:2]), reference[:2])


@pytest.fixture(scope="module")
def ray_executor():
    ray = pytest.importorskip("ray")
    import ray.cloudpickle as rcp

    rcp.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests/
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ex = RayExecutor(num_cpus=2, timeout_s=120)
    yield ex
    RayExecutor.shutdown()
    assert not ray.is_initialized()


def test_ray_executor_equals_local(reference, ray_executor):
    assert_same_episodes(ray_executor(TASK, _jobs()), reference)
    batched = RayExecutor(inner="batched", chunks=2)  # joins the running local Ray
    assert_same_episodes(batched(TASK, _jobs()), reference)


def test_ray_dead_worker_raises(ray_executor):
    dying = RolloutTask(env=PointMassEnv, policy=_dies)
    with pytest.raises(WorkerDiedError, match="Ray worker died"):
        ray_executor(dying, _jobs(2))


def test_bad_executor_arguments():
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("gpu")
    with pytest.raises(ValueError, match="n_workers"):
        ProcessExecutor(n_workers=0)
    with pytest.raises(ValueError, match="max_envs"):
        BatchedExecutor(max_envs=0)
