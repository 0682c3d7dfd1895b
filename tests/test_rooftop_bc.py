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
