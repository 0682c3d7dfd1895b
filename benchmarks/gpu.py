"""GPU benchmark: the CUDA training path end to end, PPO update speed CPU vs CUDA, and rendering.

    python benchmarks/gpu.py             # on a machine with a CUDA GPU; writes results/gpu.json
    python benchmarks/gpu.py --quick     # smaller budgets

Three parts, each a section of ``results/gpu.json``:

1. ``updates``: the PPO gradient phase (``model.train()``, n_epochs over one rollout) of the
   shipped DroneRace configs on CPU and on CUDA, same rollout, same hyper-parameters: the
   state MLP (256x256) and the FPV ``state_rgb`` MultiInputPolicy (NatureCNN). This is the
   part of training a GPU speeds up; env stepping stays on the CPU either way.
2. ``train``: ``simenvs.agents.train`` on DroneRace-v0 with ``device="cuda"``, and ``"cpu"`` on
   the same machine to compare (BC + DAgger warm start, then PPO), held-out success, then
   ``export_policy`` of that run to ONNX (verified against SB3 inside the export) and the
   exported file run through ``simenvs.deploy.Policy`` for a full episode.
3. ``render``: env steps/s with 64x64 camera observations through MuJoCo's EGL backend, with
   the GL renderer string, so hardware rendering can be compared with llvmpipe
   (``results/drone_race.json`` on the 2-core CI machine).

Without CUDA the script exits with a message (CI never needs a GPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write  # noqa: E402

import simenvs  # noqa: E402, F401  (registers the env ids)


def gl_renderer() -> str:
    """The OpenGL renderer MuJoCo's EGL context lands on (e.g. llvmpipe or an NVIDIA GPU)."""
    import mujoco

    ctx = mujoco.GLContext(16, 16)
    ctx.make_current()
    try:
        from OpenGL import GL

        return GL.glGetString(GL.GL_RENDERER).decode()
    finally:
        ctx.free()


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1))
    try:
        info["gl_renderer"] = gl_renderer()
    except Exception as e:  # no GL at all: the render part reports it
        info["gl_renderer"] = f"unavailable: {e}"
    return info


# ---- 1. PPO update phase, CPU vs CUDA --------------------------------------------------------


def update_seconds(config: str, device: str, repeats: int) -> dict[str, Any]:
    """Seconds per ``model.train()`` (one PPO update phase) and per rollout collection."""
    import torch
    from stable_baselines3 import PPO

    from simenvs.agents.config import load_config, resolve_algo_kwargs, resolve_policy_kwargs
    from simenvs.agents.vec import make_vec_env, wrap_for_policy

    cfg = load_config(config=config, overrides={"device": device})
    algo_kwargs = resolve_algo_kwargs(cfg.algo_kwargs)
    venv, _ = make_vec_env(cfg.env_id, cfg.n_envs, "sync", 0, cfg.make_kwargs())
    venv = wrap_for_policy(venv, cfg.normalize_kwargs())
    model = PPO(
        cfg.policy,
        venv,
        device=device,
        seed=0,
        verbose=0,
        policy_kwargs=resolve_policy_kwargs(cfg.policy_kwargs) or None,
        **{**algo_kwargs, "target_kl": None},  # every epoch runs: equal work on both devices
    )
    _, callback = model._setup_learn(total_timesteps=10**9, callback=None)
    callback.on_training_start(locals(), globals())
    t0 = time.perf_counter()
    model.collect_rollouts(model.env, callback, model.rollout_buffer, model.n_steps)
    rollout_s = time.perf_counter() - t0
    model.train()  # warm-up (CUDA kernels, cuDNN autotune)
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        model.train()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    venv.close()
    samples = model.n_steps * cfg.n_envs
    return {
        "config": config,
        "policy": cfg.policy,
        "device": device,
        "samples_per_update": samples,
        "n_epochs": algo_kwargs.get("n_epochs", 10),
        "batch_size": algo_kwargs.get("batch_size", 64),
        "update_s": float(np.median(times)),
        "rollout_s": rollout_s,
        "torch_threads": torch.get_num_threads(),
    }


def updates(quick: bool) -> list[dict[str, Any]]:
    rows = []
    for config in ("DroneRace-v0", "DroneRace-v0_fpv"):
        pair = {d: update_seconds(config, d, 2 if quick else 5) for d in ("cpu", "cuda")}
        for d, r in pair.items():
            r["speedup_vs_cpu"] = pair["cpu"]["update_s"] / r["update_s"]
            rows.append(r)
            print(
                f"  {config:18s} {d:4s}: update {r['update_s']:.3f} s for "
                f"{r['samples_per_update']} samples x {r['n_epochs']} epochs "
                f"(x{r['speedup_vs_cpu']:.1f} vs cpu), rollout {r['rollout_s']:.2f} s",
                flush=True,
            )
    return rows


# ---- 2. train on CUDA, export, deploy ---------------------------------------------------------


def train_on(device: str, quick: bool, work: Path) -> dict[str, Any]:
    from simenvs.agents.config import load_config
    from simenvs.agents.train import train
    from simenvs.deploy import Policy
    from simenvs.export import export_policy

    pre = (
        {"episodes": 10, "dagger_iters": 2, "dagger_episodes": 8, "epochs": 15, "value_epochs": 5}
        if quick
        else {"episodes": 30, "dagger_iters": 6, "dagger_episodes": 15, "epochs": 30}
    )
    over = {
        "device": device,
        "total_timesteps": 16384 if quick else 65536,
        "vec": "async",
        "eval_freq": 0,
        "final_eval_episodes": 20 if quick else 50,
        "video": False,
        "pretrain": pre,
    }
    t0 = time.perf_counter()
    res = train(
        load_config(config="DroneRace-v0", overrides=over), work / f"{device}_run", False, False, 0
    )
    wall = time.perf_counter() - t0
    on_gpu = next(res.model.policy.parameters()).is_cuda
    final = res.metrics.get("final_eval") or {}
    exp = export_policy(work / f"{device}_run", work / "export", "onnx")
    policy = Policy.load(exp.out_dir)
    deployed = _deployed_success(policy, final.get("env_kwargs", {"obs_mode": "state"}), 10)
    row = {
        "env_id": "simenvs/DroneRace-v0",
        "device": res.metrics.get("device"),
        "device_name": res.metrics.get("device_name"),
        "parameters_on_cuda": bool(on_gpu),
        "rl_steps": res.metrics.get("num_timesteps"),
        "wall_s_incl_pretrain_and_eval": round(wall, 1),
        "rl_steps_per_s": res.metrics.get("steps_per_s"),
        "held_out_success": final.get("success_rate"),
        "held_out_episodes": final.get("episodes"),
        "export_max_abs_error": exp.max_abs_error,  # export_policy raises above its atol
        "deployed_onnx_success": deployed,
    }
    print(f"  train on {device}: {row}", flush=True)
    return row


class _Outcomes(gym.Wrapper):
    """Records ``is_success`` at the end of each episode (the hardware loop drops ``info``)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.successes: list[bool] = []

    def step(self, action: Any) -> Any:
        out = self.env.step(action)
        if out[2] or out[3]:
            self.successes.append(bool(out[4].get("is_success", False)))
        return out


def _deployed_success(policy: Any, env_kwargs: dict[str, Any], episodes: int) -> dict[str, Any]:
    """The exported ONNX file (physical units) driving the env through the hardware-loop adapter
    that maps commands back to env actions, on held-out seeds."""
    from simenvs.agents.hardware_loop import SimulatedRobot

    env = _Outcomes(gym.make("simenvs/DroneRace-v0", **env_kwargs))
    robot = SimulatedRobot(env, policy.metadata, seed=2_000_000)
    while robot.episodes < episodes:
        robot.send_command(policy(robot.read_observation()))
    env.close()
    return {"episodes": episodes, "success_rate": float(np.mean(env.successes[:episodes]))}


# ---- 3. rendering ------------------------------------------------------------------------------


def render(quick: bool) -> list[dict[str, Any]]:
    import gymnasium as gym
    from _common import cpu_rate, quad_env_rate

    seconds = 2.0 if quick else 5.0
    rows = []
    for env_id, kwargs in (
        ("simenvs/DroneRace-v0", {"obs_mode": "rgb"}),
        ("simenvs/RooftopLanding-v0", {"obs_mode": "rgb"}),
        ("simenvs/Grasp-v0", {"obs_mode": "rgb", "image_size": (64, 64)}),
    ):
        env = gym.make(env_id, **kwargs)
        if hasattr(env.unwrapped, "hover_action"):
            cpu, wall = quad_env_rate(env, seconds)
        else:
            rng = np.random.default_rng(0)
            env.reset(seed=0)

            def step(env: Any = env, rng: Any = rng) -> None:
                _, _, term, trunc, _ = env.step(rng.uniform(-1, 1, 5).astype(np.float32))
                if term or trunc:
                    env.reset()

            cpu, wall = cpu_rate(step, seconds, 50)
        env.close()
        row = {"env_id": env_id, **kwargs, "steps_per_s": wall, "steps_per_cpu_s": cpu}
        row["image_size"] = list(kwargs.get("image_size", (64, 64)))
        rows.append(row)
        print(f"  render {env_id}: {wall:.0f} env steps/s wall, {cpu:.0f} per CPU-s", flush=True)
    return rows


def _in_tmp(fn: Callable[[Path], Any]) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        return fn(Path(tmp))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", default="updates,render,train")
    p.add_argument("--name", default="gpu", help="results/<name>.json")
    p.add_argument(
        "--train-devices", default="cuda,cpu", help="devices for the end-to-end training part"
    )
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False)")
        return 1
    parts = set(args.parts.split(","))
    info = device_info()
    print(f"device: {info}", flush=True)
    payload: dict[str, Any] = {"device": info, "quick": args.quick}
    runners = {
        "updates": lambda: updates(args.quick),
        "render": lambda: render(args.quick),
        "train": lambda: [
            _in_tmp(lambda d, dev=dev: train_on(dev, args.quick, d))
            for dev in args.train_devices.split(",")
        ],
    }
    failed = False
    for name, fn in runners.items():
        if name not in parts:
            continue
        try:
            payload[name] = fn()
        except Exception as e:  # keep the other parts' figures; the JSON says what broke
            traceback.print_exc()
            payload[name] = {"error": f"{type(e).__name__}: {e}"}
            failed = True
    write(args.name, payload)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
