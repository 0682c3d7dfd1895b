"""Training and evaluation machinery (simenvs.agents): proven on tiny budgets.

Built-in Gymnasium envs prove the machinery on its own (CartPole learns, SAC resumes with its
replay buffer, a killed run resumes from its last checkpoint); the simenvs tests assert that
learning happens on an easy variant of a simenvs task and that rl_zoo3 trains it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml

from simenvs.agents.config import load_config, resolve_algo_kwargs, resolve_device
from simenvs.agents.evaluate import EvalReport, evaluate_run, run_episodes
from simenvs.agents.media import write_video
from simenvs.agents.run_dir import RunDir
from simenvs.agents.stats import wilson_interval
from simenvs.agents.train import TrainConfig, add_train_arguments, config_from_args, train
from simenvs.agents.vec import GymVectorEnvAdapter, make_vec_env

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# Small, fast PPO settings for CartPole (learns to ~400+ in ~10k steps).
CARTPOLE_FAST = dict(
    n_steps=128, batch_size=128, n_epochs=4, learning_rate=3e-3, gamma=0.98, gae_lambda=0.8
)


# ---- statistics / config ----------------------------------------------------------------------


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(5, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.2366, 0.7634)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and round(lo, 4) == 0.7225
    assert wilson_interval(0, 10)[0] == 0.0
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_config_resolution_and_errors(tmp_path):
    cfg = load_config("Pendulum-v1")  # shipped config, default algo sac
    assert cfg.algo == "sac" and cfg.total_timesteps == 20_000 and cfg.n_envs == 1
    cfg = load_config("Pendulum-v1", "ppo", overrides={"n_envs": 2, "seed": None})
    assert cfg.algo == "ppo" and cfg.n_envs == 2 and cfg.normalize_kwargs()["norm_obs"]
    assert cfg.seed == 0  # None overrides are ignored
    kw = resolve_algo_kwargs({"learning_rate": "lin_1e-3", "train_freq": [1, "episode"]})
    assert kw["learning_rate"](0.5) == pytest.approx(5e-4) and kw["train_freq"] == (1, "episode")

    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"dynamics.mass_scale": {"kind": "uniform"}}))
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"env_id": "CartPole-v1", "randomization": str(spec)}))
    cfg = load_config(config=f)
    assert cfg.env_id == "CartPole-v1" and cfg.randomization == {
        "dynamics.mass_scale": {"kind": "uniform"}
    }  # the file's content is inlined, so config.json is self-contained
    assert cfg.make_kwargs()["randomization"] == cfg.randomization

    f.write_text(yaml.safe_dump({"env_id": "CartPole-v1", "ppo": {"n_env": 3}}))
    with pytest.raises(ValueError, match="n_env"):
        load_config(config=f)
    with pytest.raises(ValueError, match="written for env"):
        load_config("Pendulum-v1", config=f)
    with pytest.raises(ValueError, match="algo='a2c'"):
        load_config("CartPole-v1", "a2c")
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_config("CartPole-v1", config="no-such-config")
    with pytest.raises(ValueError, match="vec='gpu'"):
        TrainConfig(env_id="CartPole-v1", vec="gpu")


def test_device_auto_falls_back_and_cuda_is_checked():
    if torch.cuda.is_available():
        assert resolve_device("auto") == "cuda"
    else:
        assert resolve_device("auto") == "cpu"
        with pytest.raises(RuntimeError, match="torch.cuda.is_available"):
            resolve_device("cuda")


def test_cli_arguments_resolve(tmp_path):
    import argparse

    p = add_train_arguments(argparse.ArgumentParser())
    args = p.parse_args(
        [
            "CartPole-v1",
            "--steps",
            "2e3",
            "--n-envs",
            "2",
            "--vec",
            "sync",
            "--env-kwarg",
            "sutton_barto_reward=true",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    cfg, out = config_from_args(args)
    assert cfg.total_timesteps == 2000 and cfg.n_envs == 2 and out == tmp_path / "r"
    assert cfg.env_kwargs == {"sutton_barto_reward": True}
    with pytest.raises(SystemExit):
        p.parse_args(["CartPole-v1", "--steps", "many"])


# ---- vector envs ------------------------------------------------------------------------------


def _same_step_cartpole(num_envs: int, **kwargs):
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=40) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )


def _disabled_cartpole(num_envs: int, **kwargs):
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1", max_episode_steps=40) for _ in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.DISABLED,
    )


@pytest.mark.parametrize("creator", [_same_step_cartpole, _disabled_cartpole])
def test_batched_adapter_matches_dummy_vec_env(creator):
    """A natively batched env seen through the adapter steps exactly like DummyVecEnv."""
    env_id = f"TestBatched{creator.__name__.title().replace('_', '')}-v0"
    gym.register(
        id=env_id,
        entry_point="gymnasium.envs.classic_control.cartpole:CartPoleEnv",
        vector_entry_point=creator,
        max_episode_steps=40,
    )
    try:
        batched, mode = make_vec_env(env_id, 3, "batched", seed=7)
        dummy, _ = make_vec_env(env_id, 3, "sync", seed=7)
        assert mode == "batched" and isinstance(batched.venv, GymVectorEnvAdapter)
        ob, od = batched.reset(), dummy.reset()
        np.testing.assert_allclose(ob, od)
        rng = np.random.default_rng(0)
        ends = 0
        for _ in range(120):
            a = rng.integers(0, 2, size=3)
            ob, rb, db, ib = batched.step(a)
            od, rd, dd, id_ = dummy.step(a)
            np.testing.assert_allclose(ob, od, rtol=1e-6)
            np.testing.assert_array_equal(db, dd)
            np.testing.assert_allclose(rb, rd)
            for i in np.flatnonzero(db):
                ends += 1
                np.testing.assert_allclose(
                    ib[i]["terminal_observation"], id_[i]["terminal_observation"], rtol=1e-6
                )
                assert ib[i]["TimeLimit.truncated"] == id_[i]["TimeLimit.truncated"]
                assert ib[i]["episode"]["l"] == id_[i]["episode"]["l"]
        assert ends >= 6
    finally:
        gym.registry.pop(env_id, None)


def test_batched_falls_back_with_clear_message():
    with pytest.warns(UserWarning, match="no natively batched implementation"):
        venv, mode = make_vec_env("Pendulum-v1", 2, "batched", seed=0)
    assert mode == "sync"
    venv.close()
    # Gymnasium's own CartPoleVectorEnv autoresets on the next step, which SB3 cannot use
    with pytest.warns(UserWarning, match="autoreset mode NEXT_STEP"):
        venv, mode = make_vec_env("CartPole-v1", 2, "batched", seed=0)
    assert mode == "sync"
    venv.close()
    with pytest.raises(ValueError, match="vec='threads'"):
        make_vec_env("CartPole-v1", 2, "threads")


# ---- evaluation ---------------------------------------------------------------------------


class _Reach(gym.Env):
    """1-D reach: success when |x - goal| < 0.1; flags ``out_of_bounds``; renders a dot."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode=None):
        self.observation_space = gym.spaces.Box(-2, 2, (2,), np.float32)
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.goal = 0.0, float(self.np_random.uniform(-1, 1))
        return self._obs(), {}

    def _obs(self):
        return np.array([self.x, self.goal], np.float32)

    def step(self, a):
        self.x += 0.2 * float(np.clip(a[0], -1, 1))
        success = abs(self.x - self.goal) < 0.1
        out = abs(self.x) > 1.5
        info = {"is_success": success, "out_of_bounds": out}
        return self._obs(), -abs(self.x - self.goal), success or out, False, info

    def render(self):
        img = np.zeros((32, 48, 3), np.uint8)
        img[14:18, int(np.clip((self.x + 2) * 12, 0, 47))] = 255
        return img


def test_run_episodes_counts_success_failures_and_seeds():
    envs = [gym.wrappers.TimeLimit(_Reach(), 20) for _ in range(3)]
    toward = lambda obs: np.sign(obs[:, 1:2] - obs[:, :1])  # noqa: E731
    away = lambda obs: -np.sign(obs[:, 1:2] - obs[:, :1])  # noqa: E731
    good = EvalReport.from_records(run_episodes(envs, toward, 10, seed=5), 5)
    assert good.success_rate == 1.0 and good.successes == 10 and good.failure_counts == {}
    assert [r.seed for r in good.records] == list(range(5, 15))
    bad = EvalReport.from_records(run_episodes(envs[:2], away, 10, seed=5), 5)
    assert bad.success_rate == 0.0 and bad.success_ci95[1] < 0.31
    assert bad.failure_counts == {"out_of_bounds": 10}
    # results do not depend on how many envs run in parallel
    one = EvalReport.from_records(run_episodes(envs[:1], toward, 10, seed=5), 5)
    assert [r.ret for r in one.records] == pytest.approx([r.ret for r in good.records])
    frames: list = []
    run_episodes([_Reach()], toward, 2, seed=0, frames=frames, video_episodes=1)
    assert len(frames) >= 2 and frames[0].shape == (32, 48, 3)


def test_write_video_roundtrip(tmp_path):
    import imageio.v2 as imageio

    frames = [np.full((33, 47, 3), i * 20, np.uint8) for i in range(8)]
    path = write_video(frames, tmp_path / "v.mp4", fps=10)
    assert path is not None and path.stat().st_size > 0
    back = imageio.mimread(path)
    assert len(back) == 8 and back[0].shape[:2] == (32, 46)  # cropped to even size


# ---- training ----------------------------------------------------------------------------


def test_ppo_learns_cartpole_and_run_folder_is_complete(tmp_path):
    cfg = load_config(
        "CartPole-v1",
        overrides=dict(
            total_timesteps=10_240,
            n_envs=4,
            eval_freq=5_120,
            eval_episodes=4,
            final_eval_episodes=10,
            checkpoint_freq=5_120,
            algo_kwargs=CARTPOLE_FAST,
            video=False,
        ),
    )
    res = train(cfg, tmp_path / "run", progress_bar=False, verbose=0)
    run = RunDir(res.run_dir)
    assert res.final_eval.mean_return > 150, res.final_eval.summary()
    for p in (run.config, run.model, run.metrics, run.learning_curve):
        assert p.exists(), p
    stored = json.loads(run.config.read_text())
    assert stored["env_id"] == "CartPole-v1" and stored["algo"] == "ppo"
    assert stored["env_kwargs"] == {} and stored["device_resolved"] == "cpu"
    m = json.loads(run.metrics.read_text())
    evals = m["evaluations"]
    assert m["num_timesteps"] >= 10_240 and [e["t"] for e in evals] == [0, 5_120, 10_240]
    r = m["train_episodes"]["r"]  # stochastic training episodes: ~22 steps at the start
    assert np.mean(r[:20]) < 60 and np.mean(r[-20:]) > 150, (r[:20], r[-20:])
    assert m["final_eval"]["episodes"] == 10 and m["wall_time_s"] > 0
    assert len(m["train_episodes"]["r"]) > 50
    assert [c.num_timesteps for c in run.list_checkpoints()] == [5_120, 10_240]
    assert list((run.tensorboard).rglob("events.out.tfevents*"))
    with pytest.raises(FileExistsError, match="--resume"):
        train(cfg, run.root, progress_bar=False, verbose=0)

    rep = evaluate_run(run.root, episodes=6, n_envs=2)
    assert rep.episodes == 6 and rep.mean_return > 150
    assert json.loads(run.eval_report("config").read_text())["episodes"] == 6
    with pytest.raises(ValueError, match="--randomization 'wider'"):
        evaluate_run(run.root, episodes=2, randomization="wider")


def test_sac_resume_restores_replay_buffer_and_vecnormalize(tmp_path):
    over = dict(
        total_timesteps=400,
        eval_freq=0,
        final_eval_episodes=1,
        checkpoint_freq=200,
        video=False,
        normalize=True,
        algo_kwargs=dict(learning_starts=100, buffer_size=5_000, batch_size=32, train_freq=4),
    )
    out = tmp_path / "sac"
    train(load_config("Pendulum-v1", "sac", overrides=over), out, progress_bar=False, verbose=0)
    ckpt = RunDir(out).latest_checkpoint()
    assert ckpt.num_timesteps == 400 and ckpt.replay_buffer and ckpt.vecnormalize
    cfg = load_config("Pendulum-v1", "sac", overrides={**over, "total_timesteps": 600})
    res = train(cfg, out, resume=True, progress_bar=False, verbose=0)
    assert res.model.num_timesteps == 600
    assert res.model.replay_buffer.size() == 600  # 400 restored + 200 new transitions
    vn = res.model.get_vec_normalize_env()
    assert vn.obs_rms.count > 600  # statistics continued, not restarted
    assert (out / "vecnormalize.pkl").exists()


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    """SIGKILL mid-training loses at most one checkpoint interval; --resume continues."""
    conf = tmp_path / "cp.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "env_id": "CartPole-v1",
                "ppo": {
                    "n_envs": 4,
                    "eval_freq": 0,
                    "video": False,
                    "final_eval_episodes": 2,
                    "algo_kwargs": CARTPOLE_FAST,
                    "torch_threads": 1,
                },
            }
        )
    )
    out = tmp_path / "killed"
    freq = 1024  # = 2 rollouts of 4 x 128
    cmd = [
        PY,
        "-u",
        "-m",
        "simenvs.agents.train",
        "CartPole-v1",
        "--config",
        str(conf),
        "--steps",
        "1e6",
        "--checkpoint-freq",
        str(freq),
        "--out",
        str(out),
        "--no-progress",
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    seen, lines = 0, []
    deadline = time.time() + 90
    try:
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "total_timesteps" in line:
                seen = int(line.split("|")[2])
                if seen >= 3 * freq + 300:
                    break
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert seen >= 3 * freq, "".join(lines[-20:])
    run = RunDir(out)
    last = run.latest_checkpoint()
    assert last is not None and seen - last.num_timesteps <= freq
    assert len(run.list_checkpoints()) <= 2  # older ones pruned
    (run.checkpoints / ".tmp-step_000000999999-1").mkdir()  # a torn write is never picked up
    assert run.latest_checkpoint() == last

    args = add_train_arguments(__import__("argparse").ArgumentParser()).parse_args(
        ["--resume", "--out", str(out), "--steps", str(last.num_timesteps + 512)]
    )
    cfg, _ = config_from_args(args)
    assert cfg.n_envs == 4 and cfg.algo_kwargs["n_steps"] == 128  # stored config wins
    res = train(cfg, out, resume=True, progress_bar=False, verbose=0)
    assert res.model.num_timesteps == last.num_timesteps + 512
    assert res.metrics["train_episodes"]["t"][0] < last.num_timesteps  # curve carried over


# ---- simenvs envs -------------------------------------------------------------------------


def _need(env_id: str) -> None:
    import simenvs  # noqa: F401  (registers the ids)

    if env_id not in gym.registry:
        pytest.skip(f"{env_id} is not registered yet")


def test_ppo_return_rises_on_easy_landing(tmp_path):
    """Pure RL, no expert: PPO from scratch on the easy landing variant (oracle state, no
    clutter, no randomization) beats a random policy's return within seconds."""
    _need("simenvs/RooftopLanding-v0")
    from simenvs.agents.evaluate import VALIDATION_SEED
    from simenvs.agents.vec import make_env

    over = dict(
        total_timesteps=12_288,
        n_envs=4,
        randomization="none",
        env_kwargs={"obs_mode": "state", "clutter_density": 0.0},
        eval_freq=0,
        video=False,
        final_eval_episodes=8,
        checkpoint_freq=0,
        select_best=False,
        pretrain={},  # pure RL: no expert warm start
        policy_kwargs={"net_arch": [64, 64]},
        algo_kwargs=dict(n_steps=256, batch_size=256, n_epochs=4, learning_rate=1e-3),
    )
    cfg = load_config("simenvs/RooftopLanding-v0", "ppo", overrides=over)
    res = train(cfg, tmp_path / "land", progress_bar=False, verbose=0)
    env = make_env(cfg.env_id, cfg.make_kwargs(evaluation=True))
    env.action_space.seed(0)
    rand = EvalReport.from_records(
        run_episodes([env], lambda o: np.stack([env.action_space.sample()]), 8, VALIDATION_SEED),
        VALIDATION_SEED,
    )
    trained = res.final_eval.mean_return
    # measured: random about -90 (flies out of the block), trained about -30 after 12k steps
    assert trained > rand.mean_return + 0.4 * abs(rand.mean_return), (trained, rand.mean_return)
    r = res.metrics["train_episodes"]["r"]
    assert np.mean(r[-10:]) > np.mean(r[:10]) + 20  # the training curve rises too


def test_behaviour_cloning_grasps_held_out_objects(tmp_path):
    """Pretraining path: 30 expert episodes cloned in seconds grasp unseen test objects."""
    _need("simenvs/Grasp-v0")
    over = dict(
        total_timesteps=256,
        n_envs=1,
        randomization="none",
        eval_freq=0,
        video=False,
        final_eval_episodes=12,
        checkpoint_freq=0,
        select_best=False,
        pretrain={"episodes": 30, "dagger_iters": 0, "epochs": 50, "value_epochs": 0},
        algo_kwargs={"n_steps": 256, "batch_size": 256, "learning_rate": 0.0},
    )
    cfg = load_config("simenvs/Grasp-v0", "ppo", overrides=over)
    assert cfg.eval_env_kwargs == {"object_set": "test"}
    res = train(cfg, tmp_path / "grasp", progress_bar=False, verbose=0)
    assert res.metrics["pretrain"]["rounds"][0]["success"] > 0.9  # the expert itself
    # a random policy never lifts an object (0/5 measured); the clone does, on test objects
    assert res.final_eval.successes >= 4, res.final_eval.summary()


def test_cli_train_eval_video_async_on_simenvs(tmp_path):
    """CLI end to end on a simenvs env: async workers import simenvs, video renders (EGL)."""
    _need("simenvs/RooftopLanding-v0")
    from simenvs.agents.evaluate import main as eval_main
    from simenvs.agents.train import main as train_main

    out = tmp_path / "land"
    conf = tmp_path / "tiny.yaml"
    conf.write_text(
        yaml.safe_dump(
            {
                "env_id": "simenvs/RooftopLanding-v0",
                "env_kwargs": {
                    "obs_mode": "state",
                    "clutter_density": 0.0,
                    "max_episode_steps": 40,
                },
                "ppo": {
                    "n_envs": 2,
                    "eval_freq": 0,
                    "final_eval_episodes": 2,
                    "normalize": True,
                    "algo_kwargs": {"n_steps": 64, "batch_size": 64, "n_epochs": 1},
                },
            }
        )
    )
    rc = train_main(
        [
            "simenvs/RooftopLanding-v0",
            "--config",
            str(conf),
            "--steps",
            "128",
            "--vec",
            "async",
            "--out",
            str(out),
            "--no-progress",
            "-q",
        ]
    )
    assert rc == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["vec_resolved"] == "async" and stored["randomization_spec"]
    assert (out / "vecnormalize.pkl").exists() and RunDir(out).existing_video() is not None
    assert eval_main([str(out), "--episodes", "2", "--randomization", "none", "--video"]) == 0
    rep = json.loads((out / "eval_none.json").read_text())
    assert rep["episodes"] == 2 and rep["env_kwargs"]["randomization"] == "none"
    assert rep["video"] and (out / rep["video"]).stat().st_size > 0


def test_vision_config_trains_and_evaluates_dict_observations(tmp_path):
    """The shipped FPV config: CNN + MLP on {image, state}, VecNormalize on the state only,
    behaviour cloning on image batches, evaluation through the same path."""
    _need("simenvs/DroneRace-v0")
    from simenvs.agents.evaluate import load_policy

    over = dict(
        total_timesteps=64,
        n_envs=2,
        eval_freq=0,
        final_eval_episodes=1,
        video=False,
        checkpoint_freq=0,
        select_best=False,
        env_kwargs={"obs_mode": "state_rgb", "max_episode_steps": 30},
        pretrain={
            "episodes": 2,
            "dagger_iters": 1,
            "dagger_episodes": 1,
            "epochs": 1,
            "value_epochs": 1,
        },
        algo_kwargs={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
    )
    cfg = load_config("simenvs/DroneRace-v0", config="DroneRace-v0_fpv", overrides=over)
    assert cfg.policy == "MultiInputPolicy"
    res = train(cfg, tmp_path / "fpv", progress_bar=False, verbose=0)
    vn = res.model.get_vec_normalize_env()
    assert vn.norm_obs_keys == ["state"]  # images stay uint8
    assert res.metrics["pretrain"]["rounds"][0]["samples"] == 60  # 2 episodes x 30 steps
    model, vn2, _ = load_policy(tmp_path / "fpv", device="cpu")
    assert model.observation_space["image"].shape == (3, 64, 64)  # SB3 transposed to CHW
    assert vn2.obs_rms["state"].mean.shape == (34,)


def test_object_set_maps_to_each_envs_split_argument():
    _need("simenvs/DroneRace-v0")
    from simenvs.agents.evaluate import held_out_kwarg

    assert held_out_kwarg("simenvs/Grasp-v0") == "object_set"
    assert held_out_kwarg("simenvs/DroneRace-v0") == "gate_textures"  # behind a factory
    with pytest.raises(ValueError, match="no train/test split"):
        held_out_kwarg("simenvs/RooftopLanding-v0")


def test_vec_batched_uses_native_batched_env():
    """``--vec batched`` on a simenvs id runs the mujoco.batch env through SB3's API."""
    _need("simenvs/DroneRace-v0")
    if gym.spec("simenvs/DroneRace-v0").vector_entry_point is None:
        pytest.skip("simenvs/DroneRace-v0 has no vector_entry_point registered yet")
    venv, mode = make_vec_env("simenvs/DroneRace-v0", 4, "batched", seed=0)
    assert mode == "batched"
    venv.reset()
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(200):
        obs, rew, done, infos = venv.step(rng.uniform(-1, 1, (4, 4)).astype(np.float32))
        for i in np.flatnonzero(done):
            ends += 1
            assert infos[i]["terminal_observation"].shape == (34,)
            assert "episode" in infos[i] and "is_success" in infos[i]
    assert obs.shape == (4, 34) and ends >= 2  # random flight crashes within 200 steps
    venv.close()


def test_rl_zoo3_trains_drone_race(tmp_path):
    """``python -m rl_zoo3.train --env simenvs/DroneRace-v0 --gym-packages simenvs`` works."""
    _need("simenvs/DroneRace-v0")
    pytest.importorskip("rl_zoo3")
    cmd = [
        PY,
        "-m",
        "rl_zoo3.train",
        "--algo",
        "ppo",
        "--env",
        "simenvs/DroneRace-v0",
        "--gym-packages",
        "simenvs",
        "-n",
        "256",
        "--eval-freq",
        "-1",
        "-f",
        str(tmp_path),
        "--seed",
        "0",
        "--device",
        "cpu",
        "--log-interval",
        "-1",
        "--conf-file",
        "simenvs.agents.zoo_ppo",
        "--hyperparams",
        "n_envs:1",
        "n_steps:128",
        "batch_size:64",
        "n_epochs:1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert list(tmp_path.rglob("*.zip")), "rl_zoo3 saved no model"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_path_trains_on_gpu(tmp_path):
    over = dict(
        total_timesteps=512,
        n_envs=2,
        eval_freq=0,
        final_eval_episodes=1,
        video=False,
        device="cuda",
        algo_kwargs={"n_steps": 128, "batch_size": 64},
    )
    res = train(load_config("CartPole-v1", overrides=over), tmp_path / "gpu", False, False, 0)
    assert next(res.model.policy.parameters()).is_cuda
    assert res.metrics["device"] == "cuda"
