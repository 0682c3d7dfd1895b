"""Training benchmark: train each env with its shipped config, evaluate on held-out seeds.

    python benchmarks/training.py                      # every registered env, config budgets
    python benchmarks/training.py --env simenvs/RooftopLanding-v0 --minutes 30
    python benchmarks/training.py --env simenvs/DroneRace-v0 --minutes 10 --resume   # extend

Writes one row per env into ``benchmarks/results/training.json`` (rows of other envs are kept):
env_id, success (mean + Wilson 95 % CI over held-out episodes: seeds 1,000,000+, test objects /
test gate textures via the config's ``eval_env_kwargs``), steps, wall_time_s (training only),
device, the target from the issue and whether it was met, and the run folder (model, learning
curve, video). Budgets: ``--minutes`` caps wall time, ``--steps`` caps env steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
from pathlib import Path

import torch

from simenvs.agents.config import load_config
from simenvs.agents.evaluate import evaluate_run
from simenvs.agents.run_dir import RunDir, atomic_write_json
from simenvs.agents.train import train

RESULTS = Path(__file__).parent / "results" / "training.json"

# Targets from the issue (2 CPU cores): success on held-out episodes within a wall-time budget.
TARGETS = {
    "simenvs/RooftopLanding-v0": {"success": 0.90, "minutes": 30, "note": "oracle mode"},
    "simenvs/DroneRace-v0": {"success": 0.80, "minutes": 60, "note": "lap completion"},
    "simenvs/Grasp-v0": {"success": 0.70, "minutes": 120, "note": "test objects"},
}


def _registered_envs() -> list[str]:
    import simenvs  # noqa: F401
    from simenvs._registration import ENVS

    return [e for e in TARGETS if e in ENVS]


def _pretrain_steps(pretrain: dict | None) -> int | None:
    """Env steps of the expert/DAgger rollouts (not in ``steps``, which counts RL only)."""
    if not pretrain:
        return None
    if "env_steps" in pretrain:
        return pretrain["env_steps"]
    rounds = pretrain.get("rounds") or []
    return rounds[-1]["samples"] if rounds else None  # cumulative (below max_samples)


def bench_env(env_id: str, args: argparse.Namespace) -> dict:
    name = env_id.split("/")[-1]
    out = Path(args.out_dir) / f"{name}-{args.algo or 'default'}"
    over = {
        "total_timesteps": args.steps,
        "device": args.device,
        "n_envs": args.n_envs,
        "vec": args.vec,
        "seed": args.seed,
        "time_limit_s": args.minutes * 60 if args.minutes else None,
        "torch_threads": args.torch_threads,
        "final_eval_episodes": 0,  # the benchmark's own held-out evaluation follows
    }
    cfg = load_config(env_id, args.algo, args.config, over)
    resume = args.resume and RunDir(out).is_run()
    if RunDir(out).is_run() and not resume:
        raise SystemExit(f"{out} exists: pass --resume to extend it or remove it")
    res = train(cfg, out, resume=resume, progress_bar=not args.no_progress, verbose=1)
    rep = evaluate_run(out, episodes=args.episodes, device=args.device, video=False)
    m = res.metrics
    target = TARGETS.get(env_id)
    row = {
        "env_id": env_id,
        "algo": cfg.algo,
        "config": Path(cfg.config_file).name if cfg.config_file else None,
        "obs_mode": cfg.env_kwargs.get("obs_mode", "state"),
        "randomization": cfg.randomization if isinstance(cfg.randomization, str) else "custom",
        "eval_env_kwargs": rep.extra["env_kwargs"],
        "success": {
            "mean": rep.success_rate,
            "ci95": list(rep.success_ci95) if rep.success_ci95 else None,
            "episodes": rep.episodes,
        },
        "mean_return": rep.mean_return,
        "mean_length": rep.mean_length,
        "failure_counts": rep.failure_counts,
        "steps": m["num_timesteps"],
        "pretrain_env_steps": _pretrain_steps(m.get("pretrain")),
        "selected_step": (m.get("selected") or {}).get("t"),
        "wall_time_s": m["wall_time_s"],
        "steps_per_s": m["steps_per_s"],
        "device": m["device"],
        "device_name": m["device_name"],
        "n_envs": cfg.n_envs,
        "cpu_count": __import__("os").cpu_count(),
        "stopped_by_time_limit": m["stopped_by_time_limit"],
        "target": target,
        "target_met": (
            None
            if target is None or rep.success_rate is None
            else bool(
                rep.success_rate >= target["success"] and m["wall_time_s"] <= target["minutes"] * 60
            )
        ),
        "learning_curve": [
            {
                "t": e["t"],
                "wall_time_s": e["wall_time_s"],
                "success_rate": e["success_rate"],
                "mean_return": round(e["mean_return"], 3),
            }
            for e in m["evaluations"]
        ],
        "run_dir": str(out),
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    return row


def write_rows(rows: list[dict], path: Path = RESULTS) -> None:
    old = json.loads(path.read_text()) if path.exists() else {"rows": []}
    keep = [r for r in old.get("rows", []) if r["env_id"] not in {n["env_id"] for n in rows}]
    atomic_write_json(
        path,
        {
            "description": "simenvs training benchmark: held-out success after training "
            "with the shipped config (see benchmarks/training.py)",
            "rows": sorted(keep + rows, key=lambda r: r["env_id"]),
        },
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--env", action="append", default=None, help="env id (repeatable)")
    p.add_argument("--algo", choices=["ppo", "sac"], default=None)
    p.add_argument("--config", default=None, help="config file (one env only)")
    p.add_argument("--minutes", type=float, default=None, help="wall-time cap per env")
    p.add_argument("--steps", type=lambda s: int(float(s)), default=None, help="env-step cap")
    p.add_argument("--episodes", type=int, default=100, help="held-out evaluation episodes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--n-envs", type=int, default=None)
    p.add_argument("--vec", default=None, choices=["batched", "async", "sync"])
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--out-dir", default="runs/bench")
    p.add_argument("--resume", action="store_true", help="extend existing benchmark runs")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    envs = args.env or _registered_envs()
    if not envs:
        raise SystemExit("no simenvs env is registered yet; pass --env ENV_ID")
    if args.config and len(envs) != 1:
        raise SystemExit("--config applies to one --env only")
    for env_id in envs:
        row = bench_env(env_id, args)
        write_rows([row], Path(args.results))
        s = row["success"]
        ci = f" (95% CI {s['ci95'][0]:.2f}-{s['ci95'][1]:.2f})" if s["ci95"] else ""
        print(
            f"{env_id}: success {s['mean']}{ci}, {row['steps']} steps, "
            f"{row['wall_time_s'] / 60:.1f} min on {row['device']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
