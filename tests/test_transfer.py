"""SimOpt <-> agents bridge (train, warm-started fine-tune, policy factory) and proxy:pybullet."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from simenvs.reality import make_reality
from simenvs.simopt import SimOpt, SimOptConfig
from simenvs.simopt.training import (
    SB3PolicyFactory,
    SB3Trainer,
    evaluate_success,
    merged_spec,
    warm_start,
)

ENV = "simenvs/DroneRace-v0"
KW = {"obs_mode": "state", "max_episode_steps": 20, "n_distractors": 0}
PARAMS = ["dynamics.quad.mass", "dynamics.quad.drag[0]"]

# The smallest real PPO run: no pretraining, no evaluation, no video.
TINY = {
    "env_kwargs": KW, "n_envs": 2, "total_timesteps": 64, "pretrain": None, "eval_freq": 0,
    "final_eval_episodes": 0, "video": False, "select_best": False, "checkpoint_freq": 10**9,
    "torch_threads": 1, "policy_kwargs": {"net_arch": [32, 32], "log_std_init": -3.0},
    "algo_kwargs": {"n_steps": 32, "batch_size": 32, "n_epochs": 1, "learning_rate": 1e-3},
}  # fmt: skip


def _params(model):
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


def test_merged_spec_changes_only_the_adapted_params():
    frag = {"joint": [{"names": ["dynamics.quad.mass"], "mean": [0.9], "cov": [[1e-4]]}]}
    spec = merged_spec(ENV, frag, "default", KW)
    assert spec["joint"][-1]["names"] == ["dynamics.quad.mass"]
    assert "dynamics.quad.mass" not in spec  # the joint replaces the single entry
    base = merged_spec(ENV, None, "default", KW)
    same = {k for k in base if k != "joint" and k != "dynamics.quad.mass"}
    assert all(spec[k] == base[k] for k in same)
    with pytest.raises(ValueError, match="dynamics.quad.massx"):
        merged_spec(ENV, {"dynamics.quad.massx": {"dist": "uniform", "low": 0, "high": 1}})


def test_trainer_trains_then_warm_starts_inside_simopt(tmp_path):
    from simenvs.envs.drone_race.env import DroneRaceEnv

    truth = {"dynamics.quad.mass": 0.9, "dynamics.quad.drag[0]": 0.5}
    real = make_reality("proxy:hidden", DroneRaceEnv, params=PARAMS, truth=truth, env_kwargs=KW)
    trainer = SB3Trainer(ENV, overrides=TINY, finetune_timesteps=64)
    cfg = SimOptConfig(
        env_id=ENV, params=PARAMS, iterations=2, real_episodes=1, samples=4, updates=1,
        plot=False, prior={"dynamics.quad.mass": [0.7, 0.92], "dynamics.quad.drag[0]": [0.1, 0.6]},
        sim_env_kwargs={"randomization": "none", **KW},
    )  # fmt: skip
    so = SimOpt(cfg, tmp_path, reality=real, trainer=trainer, env=ENV, log=None)
    so.run()
    first, second = (SB3PolicyFactory(r) for r in trainer.runs)
    assert [p.split("/")[-1] for p in trainer.runs] == ["policy_000", "policy_001"]
    # the second run trained on the distribution SimOpt had after iteration 0
    req = json.loads((tmp_path / "policy_001" / "simopt_request.json").read_text())
    assert req["warm_start_from"] == first.run_dir
    mean_after_0 = so.history[0]["after"]["mean"]["dynamics.quad.mass"]
    run_cfg = json.loads((tmp_path / "policy_001" / "config.json").read_text())
    joint = run_cfg["randomization"]["joint"][-1]
    assert joint["names"] == ["dynamics.quad.mass"]
    assert joint["mean"][0] == pytest.approx(mean_after_0)
    assert run_cfg["randomization"]["dynamics.quad.drag"]["mean"][0] == pytest.approx(
        so.history[0]["after"]["mean"]["dynamics.quad.drag[0]"]
    )

    # warm start: parameters and normalization statistics start equal to the previous run's
    m0, vn0 = first.load()
    warm = warm_start(first, trainer.train_config(so.spec_fragment()))
    p0, pw = _params(m0), _params(warm)
    assert p0.keys() == pw.keys()
    assert all(np.array_equal(p0[k].numpy(), pw[k].numpy()) for k in p0)
    vnw = warm.get_vec_normalize_env()
    np.testing.assert_array_equal(vnw.obs_rms.mean, vn0.obs_rms.mean)
    assert warm.num_timesteps == m0.num_timesteps
    warm.get_env().close()
    # ... and fine-tuning moved them
    m1, _ = second.load()
    assert m1.num_timesteps == m0.num_timesteps + 64
    p1 = _params(m1)
    assert any(not np.array_equal(p0[k].numpy(), p1[k].numpy()) for k in p0)

    # the factory pickles (process / Ray executors) and acts in the env's action space
    clone = pickle.loads(pickle.dumps(second))
    env = DroneRaceEnv(**KW, randomization="none")
    obs, _ = env.reset(seed=0)
    a = clone(env).act(obs)
    assert a.shape == env.action_space.shape and env.action_space.contains(a.astype(np.float32))
    report = evaluate_success(second, real, 2, seed=7)
    assert report["episodes"] == 2 and report["mean_length"] == 20
    assert report["success_rate"] == 0.0 and report["ci95"][1] == pytest.approx(0.658, abs=1e-3)


def test_proxy_pybullet_runs_an_episode_with_hidden_offsets():
    from simenvs.agents.experts import make as expert
    from simenvs.pybullet.reality import HIDDEN_OFFSETS

    kw = {"obs_mode": "state", "max_episode_steps": 30}
    real = make_reality("proxy:pybullet", ENV, env_kwargs=kw, params=PARAMS)
    assert real.name == "proxy:pybullet"
    base = real.env.unwrapped
    assert "pybullet" in type(base).__module__
    nominal = base.quad_params
    assert real.truth["dynamics.quad.mass"] == pytest.approx(
        nominal.mass * HIDDEN_OFFSETS["dynamics.quad.mass"]
    )
    assert real.truth["dynamics.quad.drag[0]"] == pytest.approx(
        nominal.drag[0] * HIDDEN_OFFSETS["dynamics.quad.drag"]
    )
    ep = real.collect(expert, 1, seed=3).episodes[0]
    assert len(ep) == 30 and np.all(np.isfinite(ep.obs))
    assert not any(k.startswith("dynamics.") for k in ep.params)  # the truth does not leak
    assert base.params["dynamics.quad.mass"] == pytest.approx(real.truth["dynamics.quad.mass"])
    assert np.ptp(ep.obs[:, 2]) > 0.01  # it flies
    # the offsets matter: the same episode with nominal dynamics flies differently
    plain = make_reality("proxy:pybullet", ENV, env_kwargs=kw, offsets={})
    ep0 = plain.collect(expert, 1, seed=3).episodes[0]
    assert np.abs(ep0.obs[:, :6] - ep.obs[:, :6]).max() > 0.01
    noisy = make_reality("proxy:pybullet+noise", ENV, env_kwargs=kw)
    assert noisy.name == "proxy:pybullet+noise" and "noise" in noisy.effects
    with pytest.raises(ValueError, match="no PyBullet version"):
        make_reality("proxy:pybullet", "simenvs/Grasp-v0")


def test_eval_envs_get_a_merge_over_their_own_kwargs():
    """Grasp evaluates on held-out objects: its layout ranges differ, so the evaluation envs
    get their own merged spec (one spec for both would not bind)."""
    from simenvs.agents.vec import make_env

    cfg = SB3Trainer("simenvs/Grasp-v0").train_config(
        {"dynamics.actuator_gain": {"dist": "uniform", "low": 0.5, "high": 0.6}}
    )
    train_spec, eval_spec = cfg.randomization, cfg.eval_env_kwargs["randomization"]
    assert train_spec["layout.object0"] != eval_spec["layout.object0"]
    for kwargs in (cfg.make_kwargs(), cfg.make_kwargs(evaluation=True)):
        env = make_env(cfg.env_id, kwargs)
        _, info = env.reset(seed=0)
        assert 0.5 <= info["params"]["dynamics.actuator_gain"] <= 0.6
        env.close()
