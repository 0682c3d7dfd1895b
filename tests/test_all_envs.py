"""Contract tests every registered simenvs env must pass (ids come from the registry)."""

import itertools

import gymnasium as gym
import numpy as np
import pytest

import simenvs  # noqa: F401
from simenvs._registration import ENVS

IDS = list(ENVS)
pytestmark = pytest.mark.skipif(not IDS, reason="no env registered yet")


@pytest.fixture(params=IDS)
def env_id(request):
    return request.param


def test_make_with_module_prefix_and_registration(env_id):
    env = gym.make(f"simenvs:{env_id}")
    assert env.spec.id == env_id
    env.close()


def test_checkers_state_and_dict(env_id):
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    for mode in ("state", "state_rgb"):
        env = gym.make(env_id, obs_mode=mode).unwrapped
        check_env(env, skip_render_check=True)
        sb3_check(env, warn=False)
        env.close()


def test_determinism_params_pixels_and_steps(env_id):
    env = gym.make(env_id, obs_mode="state_rgb")
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=123)
        env.action_space.seed(5)
        traj = [obs["state"], obs["image"]]
        for _ in range(5):
            obs, r, *_ = env.step(env.action_space.sample())
            traj += [obs["state"], obs["image"], np.float64(r)]
        runs.append((info["params"], traj))
    (p1, t1), (p2, t2) = runs
    assert p1.keys() == p2.keys()
    for k in p1:
        assert np.array_equal(np.asarray(p1[k]), np.asarray(p2[k])), k
    assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
    env.close()


def test_sixteen_seeds_sixteen_scenes(env_id):
    env = gym.make(env_id, obs_mode="rgb")
    imgs = [env.reset(seed=s)[0].astype(np.float32) for s in range(16)]
    env.close()
    diffs = [np.abs(a - b).mean() for a, b in itertools.combinations(imgs, 2)]
    assert min(diffs) > 0.5, "two seeds rendered the same scene"
    assert np.mean(diffs) > 8.0, f"mean pairwise pixel difference only {np.mean(diffs):.1f}/255"


def test_params_reported_and_overridable(env_id):
    env = gym.make(env_id)
    _, info = env.reset(seed=0)
    params = info["params"]
    groups = {k.split(".")[0] for k in params}
    assert {"appearance", "dynamics", "sensor"} <= groups
    dyn = next(
        p
        for p in env.unwrapped.registry
        if p.group == "dynamics" and not p.is_categorical and p.shape == () and p.dtype is float
    )
    lo, hi = (float(x) for x in dyn.bounds())
    value = lo + 0.37 * (hi - lo)
    _, info = env.reset(seed=0, options={"params": {dyn.name: value}})
    assert info["params"][dyn.name] == pytest.approx(value)
    with pytest.raises(ValueError, match="unknown randomization parameter"):
        env.reset(options={"params": {"dynamics.no_such_thing": 1.0}})
    env.close()


def test_bad_arguments_are_named(env_id):
    with pytest.raises(TypeError, match="unknown argument.*'bogus_kwarg'.*allowed"):
        gym.make(env_id, bogus_kwarg=1)
    with pytest.raises(ValueError, match="unknown randomization 'medium'"):
        gym.make(env_id, randomization="medium")
    env = gym.make(env_id)
    env.reset(seed=0)
    bad = np.full(env.action_space.shape, np.nan)
    with pytest.raises(ValueError, match="non-finite"):
        env.step(bad)
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(env.action_space.shape[0] + 1))
    env.close()


def test_metadata_and_layouts(env_id):
    env = gym.make(env_id)
    base = env.unwrapped
    assert base.metadata["render_fps"] == int(round(1.0 / base.dt))
    assert base.metadata["autoreset_mode"] is not None
    n_state = int(np.prod(base.state_space().shape))
    assert sum(size for _, size, _ in base.state_layout()) == n_state
    assert len(base.action_layout()) == env.action_space.shape[0]
    env.close()


def test_gymnasium_sync_vector_env(env_id):
    """Reset info must stack across envs (fixed-size entries only)."""
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
    obs, info = venv.reset(seed=0)
    assert obs.shape[0] == 2
    for _ in range(3):
        obs, reward, term, trunc, info = venv.step(venv.action_space.sample())
    assert reward.shape == (2,)
    venv.close()
