"""CPU inference latency of exported policies, as the robot sees it.

Times one observation per call (batch 1, the control-loop case) through `simenvs.deploy.Policy`
(input validation + onnxruntime, 1 intra-op thread), the bare onnxruntime session, and the
TorchScript module (torch, 1 thread) for comparison. Policies are untrained: latency depends
on the architecture, not the weights. Targets: p99 < 1 ms (MLP), < 5 ms (64x64 CNN).

    python benchmarks/bench_inference.py [--calls 3000] [--out benchmarks/results/inference.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from simenvs.deploy import Policy
from simenvs.export import export_policy

TARGET_P99_MS = {"mlp": 1.0, "cnn": 5.0}


class StateEnv(gym.Env):
    """A drone-sized state policy: 48 observations, 4 commands."""

    observation_space = spaces.Box(-np.inf, np.inf, (48,), np.float32)
    action_space = spaces.Box(-1, 1, (4,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(48, np.float32), {}

    def step(self, action):
        return np.zeros(48, np.float32), 0.0, False, False, {}


class CameraEnv(gym.Env):
    """64x64 RGB camera plus a 16-d state, 4 commands (SB3 MultiInputPolicy: NatureCNN + MLP)."""

    observation_space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
            "state": spaces.Box(-np.inf, np.inf, (16,), np.float32),
        }
    )
    action_space = spaces.Box(-1, 1, (4,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def _models():
    state = VecNormalize(DummyVecEnv([StateEnv]))
    camera = VecNormalize(DummyVecEnv([CameraEnv]), norm_obs_keys=["state"])
    yield (
        "mlp",
        "ppo_mlp_64x64",
        PPO("MlpPolicy", state, n_steps=16, batch_size=16, device="cpu"),
        state,
    )
    yield "mlp", "sac_mlp_256x256", SAC("MlpPolicy", state, buffer_size=10, device="cpu"), state
    yield (
        "cnn",
        "ppo_cnn_64x64_multiinput",
        PPO("MultiInputPolicy", camera, n_steps=16, batch_size=16, device="cpu"),
        camera,
    )


def _time(fn, calls: int) -> dict[str, float]:
    """Wall-clock and on-CPU (this thread) time per call. On a shared machine the wall p99 is
    set by preemption from other processes; the CPU-time p99 is what the call itself costs,
    i.e. the wall figure on a core the control process has to itself."""
    for _ in range(min(200, calls)):
        fn()
    wall = np.empty(calls)
    cpu = np.empty(calls)
    for i in range(calls):
        c0, w0 = time.thread_time_ns(), time.perf_counter_ns()
        fn()
        wall[i], cpu[i] = time.perf_counter_ns() - w0, time.thread_time_ns() - c0
    wall, cpu = wall / 1e6, cpu / 1e6
    return {
        "p50_ms": float(np.percentile(wall, 50)),
        "p99_ms": float(np.percentile(wall, 99)),
        "mean_ms": float(wall.mean()),
        "cpu_p50_ms": float(np.percentile(cpu, 50)),
        "cpu_p99_ms": float(np.percentile(cpu, 99)),
    }


def bench(calls: int, workdir: Path) -> dict:
    torch.set_num_threads(1)
    results = {}
    for kind, name, model, venv in _models():
        out = workdir / name
        export_policy(model, out, format="both", vecnormalize=venv, verify_samples=64)
        policy = Policy.load(out, threads=1)
        obs = policy.example_observation()
        rng = np.random.default_rng(0)
        if isinstance(obs, dict):
            obs = {
                k: rng.integers(0, 256, v.shape, dtype=np.uint8)
                if v.dtype == np.uint8
                else rng.normal(size=v.shape).astype(np.float32)
                for k, v in obs.items()
            }
        else:
            obs = rng.normal(size=obs.shape).astype(np.float32)
        batched = {
            s.name: (obs[s.name] if isinstance(obs, dict) else obs)[None] for s in policy.inputs
        }
        session = policy.session
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(out / "policy.pt"))
        tensors = [torch.as_tensor(batched[s.name]) for s in policy.inputs]

        def run_torchscript(module=module, tensors=tensors):
            with torch.no_grad():
                module(*tensors)

        deploy = _time(lambda p=policy, o=obs: p(o), calls)
        results[name] = {
            "kind": kind,
            "inputs": {s.name: [s.dtype.name, *s.shape] for s in policy.inputs},
            "policy_parameters_incl_critic": int(sum(p.numel() for p in model.policy.parameters())),
            "deploy_policy": deploy,
            "onnxruntime_session": _time(lambda s=session, f=batched: s.run(["action"], f), calls),
            "torchscript": _time(run_torchscript, calls),
            "target_p99_ms": TARGET_P99_MS[kind],
            "meets_target_wall_p99": deploy["p99_ms"] < TARGET_P99_MS[kind],
            "meets_target_cpu_p99": deploy["cpu_p99_ms"] < TARGET_P99_MS[kind],
        }
        print(
            f"{name:26s} deploy p50 {deploy['p50_ms']:.3f} p99 {deploy['p99_ms']:.3f} "
            f"cpu-p99 {deploy['cpu_p99_ms']:.3f} ms (target p99 < {TARGET_P99_MS[kind]} ms)  "
            f"ort p50 {results[name]['onnxruntime_session']['p50_ms']:.3f}  "
            f"torchscript p50 {results[name]['torchscript']['p50_ms']:.3f}"
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "inference.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = bench(args.calls, Path(tmp))
    report = {
        "benchmark": "inference latency, batch 1, CPU, 1 thread",
        "calls": args.calls,
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
        },
        "note": "deploy_policy = simenvs.deploy.Policy call incl. input validation. p*_ms are "
        "wall-clock; cpu_p*_ms are this thread's CPU time per call (onnxruntime and torch run "
        "on the calling thread with 1 thread). With a load average above the core count, wall "
        "p99 measures preemption by other processes, not the policy.",
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
