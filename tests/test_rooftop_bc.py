"""RooftopLanding-v0 is learnable from its state observation: behaviour cloning of the scripted
expert generalizes to held-out blocks.

The expert is a memoryless function of the ``"state"`` observation (target site, altitude,
clearance grid, velocity, attitude), so a clone fit on a few blocks reproduces its actions on
unseen ones. Before the altitude / clearance grid were observed (the expert kept an integral, a
cruise height from the block's top and a settle timer), a clone fit the training episodes to
an action MSE of 3e-4 but missed held-out ones by 6e-3 to 2.4e-2, and BC + DAgger landed 0 %.

Closed-loop landing needs more data than a unit test can afford on 2 cores: with the shipped
config (40 expert episodes + 6 DAgger rounds of 20, then PPO) the policy lands on most held-out
blocks (benchmarks/results/rooftop_landing.json, "trained_policy").
"""

from __future__ import annotations

import numpy as np
import pytest

from simenvs.agents.config import load_config
from simenvs.agents.evaluate import EVAL_SEED, load_policy, policy_fn
from simenvs.agents.experts import make as make_expert
from simenvs.agents.train import train
from simenvs.agents.vec import make_env


@pytest.mark.slow
def test_cloned_policy_matches_the_expert_on_held_out_blocks(tmp_path):
    over = dict(
        total_timesteps=256,
        n_envs=1,
        eval_freq=0,
        video=False,
        final_eval_episodes=0,
        checkpoint_freq=0,
        select_best=False,
        torch_threads=1,
        pretrain={"episodes": 16, "dagger_iters": 0, "epochs": 15, "value_epochs": 0},
        algo_kwargs={"n_steps": 256, "batch_size": 256, "learning_rate": 0.0},
    )
    cfg = load_config("simenvs/RooftopLanding-v0", "ppo", overrides=over)
    assert cfg.env_kwargs["obs_mode"] == "state" and cfg.randomization == "default"
    res = train(cfg, tmp_path / "bc", progress_bar=False, verbose=0)
    train_mse = res.metrics["pretrain"]["rounds"][0]["actor_mse"]
    model, vn, _ = load_policy(tmp_path / "bc", device="cpu")
    act = policy_fn(model, vn)
    env = make_env(cfg.env_id, cfg.make_kwargs(evaluation=True))
    expert = make_expert(env)
    errs = []
    for k in range(3):  # held-out blocks, flown by the expert; the clone labels every state
        obs, _ = env.reset(seed=EVAL_SEED + k)
        for _ in range(env.unwrapped.max_episode_steps):
            a = expert.act(obs)
            errs.append((act(obs[None])[0] - a) ** 2)
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    held_out = float(np.mean(errs))
    # measured: train 3e-5, held-out 5e-4 (the hidden-state expert, 20 episodes + DAgger:
    # train 3e-4, held-out 6e-3 to 2.4e-2)
    assert held_out < 0.003, (held_out, train_mse)


def _cloner(seed: int = 0):
    """A fresh PPO (same seed: same initial weights) for RooftopLanding, VecNormalize'd."""
    from stable_baselines3 import PPO

    from simenvs.agents.vec import make_vec_env, wrap_for_policy

    cfg = load_config("simenvs/RooftopLanding-v0", "ppo")
    venv, _ = make_vec_env(cfg.env_id, 1, "sync", 0, cfg.make_kwargs())
    venv = wrap_for_policy(venv, cfg.normalize_kwargs())
    return PPO("MlpPolicy", venv, seed=seed, n_steps=64, batch_size=64, device="cpu"), cfg


def _weights(model) -> np.ndarray:
    return np.concatenate([p.detach().numpy().ravel() for p in model.policy.parameters()])


def test_dagger_aggregate_carries_over_to_a_warm_started_finetune(tmp_path):
    """``save_data``/``init_data`` (DAgger aggregation across warm starts): the fine-tune's
    first fit already holds the earlier run's samples, in order, ahead of its own; without
    them (the default) the fine-tune starts from nothing, and saving changes no weight."""
    from simenvs.agents.pretrain import PretrainConfig, load_dataset, pretrain_from_expert

    base = {"episodes": 1, "dagger_iters": 0, "epochs": 1, "value_epochs": 0, "rollout_envs": 1}
    data = tmp_path / "stage1.npz"
    runs = {}
    for name, extra in (("plain", {}), ("saving", {"save_data": str(data)})):
        model, cfg = _cloner()
        rep = pretrain_from_expert(
            model, cfg.env_id, cfg.make_kwargs(), PretrainConfig(**base, **extra), verbose=0
        )
        runs[name] = (model, rep)
        model.get_env().close()
    assert np.array_equal(_weights(runs["plain"][0]), _weights(runs["saving"][0]))
    assert "init_samples" not in runs["plain"][1] and list(tmp_path.iterdir()) == [data]
    n1 = runs["saving"][1]["saved_samples"]
    obs1, act1 = load_dataset(data)
    assert n1 == len(obs1) == len(act1) == runs["saving"][1]["rounds"][-1]["samples"] > 50

    ft = {**base, "seed": 2_500_000}
    model, cfg = runs["saving"][0], _cloner()[1]
    fresh = pretrain_from_expert(model, cfg.env_id, cfg.make_kwargs(), PretrainConfig(**ft), 0)
    own = fresh["rounds"][0]["samples"]  # the fine-tune's expert episode alone
    kept = tmp_path / "ft.npz"
    cfg_k = PretrainConfig(**ft, init_data=str(data), save_data=str(kept))
    rep = pretrain_from_expert(model, cfg.env_id, cfg.make_kwargs(), cfg_k, verbose=0)
    assert rep["init_samples"] == n1 and rep["rounds"][0]["samples"] == n1 + own
    obs2, act2 = load_dataset(kept)
    assert np.array_equal(np.stack(obs2[:n1]), np.stack(obs1))
    assert np.array_equal(np.stack(act2[:n1]), np.stack(act1))
    capped = PretrainConfig(**ft, init_data=str(data), max_samples=n1 // 2)
    rep = pretrain_from_expert(model, cfg.env_id, cfg.make_kwargs(), capped, verbose=0)
    assert rep["init_samples"] == n1 // 2 and rep["rounds"][0]["samples"] == n1 // 2


def test_dataset_files_round_trip_dict_observations_without_pickle(tmp_path):
    from simenvs.agents.pretrain import load_dataset, save_dataset

    obs = [{"state": np.full(3, i, np.float32), "image": np.full((2, 2), i, np.uint8)}
           for i in range(4)]  # fmt: skip
    acts = [np.full(2, -i, np.float32) for i in range(4)]
    path = save_dataset(tmp_path / "d.npz", obs, acts)
    back_obs, back_act = load_dataset(path)
    assert [o["image"][0, 0] for o in back_obs] == [0, 1, 2, 3]
    assert back_obs[2]["state"].dtype == np.float32 and back_act[3].tolist() == [-3.0, -3.0]
    np.savez(tmp_path / "bad.npz", act=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="no 'obs'"):
        load_dataset(tmp_path / "bad.npz")
