"""Transfer benchmark: SimOpt against stand-in realities, and the MuJoCo -> PyBullet gap.

    python benchmarks/transfer.py --quick                  # minutes: all three tasks, small
    python benchmarks/transfer.py                          # full budgets
    python benchmarks/transfer.py --envs Grasp --parts identify,policy

Per task (DroneRace, RooftopLanding, Grasp) it writes rows of ``results/transfer.json``:

1. ``identify``: SimOpt from a broad prior (moments of the env's "wide" randomization) against
   ``proxy:hidden+noise`` whose hidden values sit just outside that prior on the side that
   hurts. The scripted expert collects the data (RL budgets on this machine are too small
   for an RL policy to be a good data collector). Error of each adapted mean before/after;
   target: within 10 % of the truth or error cut >= 5x, in <= 5 iterations with <= 10 real
   rollouts per iteration.
2. ``policy``: three SB3 policies with the same training budget, evaluated in that reality on
   the same episode seeds: (a) ``broad``: trained and fine-tuned on the broad prior; (b)
   ``simopt``: the same first-stage model fine-tuned on SimOpt's adapted distribution
   (``SB3Trainer`` warm start); (c) ``oracle``: trained and fine-tuned on the true values.
   Training = behaviour cloning + DAgger from the scripted expert + PPO (``agents`` configs
   with budgets scaled down, see ``budgets``): the RL part is short, so most of what each
   policy learns comes from imitation on states of its own distribution.
3. ``engines`` (drone tasks): the broad MuJoCo-trained policy's success in MuJoCo (nominal)
   vs in PyBullet (``proxy:pybullet``, hidden offsets); SimOpt of the MuJoCo sim against
   PyBullet rollouts (errors against the *effective* truth: MuJoCo keeps nominal mass and kf,
   so thrust_scale absorbs kf and mass, and drag is per unit of nominal mass); the policy
   fine-tuned on that distribution in PyBullet; env steps/s of both engines.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

import simenvs  # noqa: E402, F401  (registers the env ids)

ID_TARGET_REL = 0.10  # within 10 % of the truth ...
ID_TARGET_CUT = 5.0  # ... or the error cut >= 5x

# Hidden values: just outside the "wide" prior (margin 0.1 of its width, clipped to the
# physical bounds) on the side that makes the task harder; the expert still solves them all.
TASKS: dict[str, dict[str, Any]] = {
    "DroneRace": {
        "env_id": "simenvs/DroneRace-v0",
        "env_kwargs": {"obs_mode": "state"},
        "truth": {
            "dynamics.quad.mass": 0.92,
            "dynamics.quad.motor_tau": 0.068,
            "dynamics.quad.drag[0]": 0.5375,
            "dynamics.quad.wind[0]": 1.8,
        },
        "id_steps": 200,  # identification rollouts are cut to 200 steps (4.2 s of flight)
        "pybullet": ["dynamics.quad.thrust_scale", "dynamics.quad.motor_tau",
                     "dynamics.quad.drag[0]", "dynamics.quad.drag[1]"],
    },
    "RooftopLanding": {
        "env_id": "simenvs/RooftopLanding-v0",
        "env_kwargs": {"obs_mode": "state"},
        "truth": {
            "dynamics.quad.mass": 0.92,
            "dynamics.quad.wind[0]": -3.0,
            "dynamics.quad.wind[1]": 3.0,
        },
        "id_steps": 300,
        "pybullet": ["dynamics.quad.thrust_scale", "dynamics.quad.motor_tau",
                     "dynamics.quad.drag[0]", "dynamics.quad.drag[1]"],
    },
    "Grasp": {
        "env_id": "simenvs/Grasp-v0",
        "env_kwargs": {"obs_mode": "state", "reward_type": "dense", "object_set": "test"},
        "truth": {
            "dynamics.actuator_gain": 0.51,
            "dynamics.object_mass[0]": 1.325,
            "dynamics.object_friction[0]": 0.1,
        },
        "id_steps": None,  # whole episodes (~40-60 steps)
        "pybullet": None,
        "bc_scale": 6,  # episodes are ~10x shorter than the drones': clone from more of them
    },
}  # fmt: skip

REALITY = "proxy:hidden+noise"


def budgets(quick: bool) -> dict[str, Any]:
    """Everything that scales with the mode (quick: minutes per task on 2 busy cores)."""
    if quick:
        return {
            "iterations": 3, "real_episodes": 3, "samples": 12, "updates": 2,
            "episodes_per_sample": 2, "eval_episodes": 10, "n_envs": 2, "rl_steps": 1024,
            "n_steps": 256, "bc": {"episodes": 8, "dagger_iters": 1, "dagger_episodes": 4,
                                   "epochs": 15, "value_epochs": 5},
            "ft_bc": {"episodes": 4, "dagger_iters": 1, "dagger_episodes": 3, "epochs": 10,
                      "value_epochs": 0},
            "bench_steps": 400, "bench_repeats": 2,
        }  # fmt: skip
    return {
        "iterations": 5, "real_episodes": 5, "samples": 16, "updates": 3,
        "episodes_per_sample": 3, "eval_episodes": 30, "n_envs": 4, "rl_steps": 8192,
        "n_steps": 512, "bc": {"episodes": 25, "dagger_iters": 3, "dagger_episodes": 10,
                               "epochs": 30, "value_epochs": 10},
        "ft_bc": {"episodes": 8, "dagger_iters": 2, "dagger_episodes": 6, "epochs": 15,
                  "value_epochs": 0},
        "bench_steps": 2000, "bench_repeats": 3,
    }  # fmt: skip


def _log(msg: str) -> None:
    print(f"[{time.strftime('%T')}] {msg}", flush=True)


# ---- identification ---------------------------------------------------------------------


def _errors(summary: dict[str, Any], truth: dict[str, float]) -> dict[str, Any]:
    out = {}
    for n, t in truth.items():
        m0, m = summary["prior_mean"][n], summary["mean"][n]
        e0, e = abs(m0 - t) / abs(t), abs(m - t) / abs(t)
        out[n] = {
            "truth": t, "prior_mean": m0, "prior_std": summary["prior_std"][n],
            "mean": m, "std": summary["std"][n], "rel_err_before": e0, "rel_err_after": e,
            "cut": e0 / max(e, 1e-12),
            "met": bool(e <= ID_TARGET_REL or e0 / max(e, 1e-12) >= ID_TARGET_CUT),
        }  # fmt: skip
    return out


def run_simopt(
    task: dict[str, Any],
    params: list[str],
    reality: Any,
    b: dict[str, Any],
    out: Path,
    truth: dict[str, float],
) -> tuple[Any, dict[str, Any]]:
    """SimOpt with the scripted expert collecting, from the moments of the "wide" preset."""
    from simenvs.agents.experts import make as expert
    from simenvs.simopt import SimOpt, SimOptConfig

    kw = dict(task["env_kwargs"])
    if task["id_steps"]:
        kw["max_episode_steps"] = task["id_steps"]
    cfg = SimOptConfig(
        env_id=task["env_id"], params=params, iterations=b["iterations"],
        real_episodes=b["real_episodes"], samples=b["samples"], updates=b["updates"],
        episodes_per_sample=b["episodes_per_sample"], prior_preset="wide",
        sim_env_kwargs={"randomization": "none", **kw}, plot=False,
    )  # fmt: skip
    t0 = time.perf_counter()
    so = SimOpt(cfg, out, reality=reality, policy=expert, env=task["env_id"], log=_log)
    summary = so.run()
    row = {
        "params": _errors(summary, truth),
        "iterations": so.completed,
        "real_rollouts_per_iteration": b["real_episodes"],
        "real_rollout_steps": task["id_steps"],
        "samples_per_update": b["samples"],
        "updates_per_iteration": b["updates"],
        "discrepancy": [[h["discrepancy_before"], h["discrepancy_after"]] for h in so.history],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    sens = sensitivity(so, truth)
    row["discrepancy_floor"] = sens["floor"]
    row["discrepancy_at_prior_mean"] = sens["at_prior_mean"]
    for n, v in row["params"].items():
        v["effect"] = sens[n]["effect"]
        v["identifiable"] = sens[n]["identifiable"]
    row["all_met"] = all(v["met"] for v in row["params"].values())
    row["identifiable_met"] = all(v["met"] for v in row["params"].values() if v["identifiable"])
    return so, row


def sensitivity(so: Any, truth: dict[str, float]) -> dict[str, Any]:
    """Which parameters the data can identify: for each, the discrepancy its move from the
    truth to the prior mean causes (sim vs sim at the truth, expert driving, the first
    iteration's real seeds and layouts) against the floor, the discrepancy that remains
    between the sim at the truth and the real episodes (sensor noise). Identifiable: effect >
    floor."""
    from simenvs.agents.experts import make as expert
    from simenvs.data import load_rollouts
    from simenvs.simopt import Job, RolloutTask
    from simenvs.simopt.env_params import expand_params
    from simenvs.simopt.rollout import make_env

    real = load_rollouts(so.run_dir / "real" / "iter_000.npz")
    env_kw = dict(so.config.sim_env_kwargs)
    probe = make_env(so.config.env_id, env_kw)
    task = RolloutTask(so.config.env_id, expert, env_kw)

    def run(values: dict[str, float]) -> list[Any]:
        full = expand_params(values, env=probe)
        jobs = [
            Job({**{k: v for k, v in ep.params.items() if k.startswith("layout.")}, **full},
                seed=ep.seed, max_steps=len(ep))
            for ep in real.episodes
        ]  # fmt: skip
        return task.run_many(jobs)

    def d(a: list[Any], b: list[Any]) -> float:
        return float(np.mean([so.disc(x.obs, y.obs, so.sim_layout, x.time, y.time)
                              for x, y in zip(a, b)]))  # fmt: skip

    at_truth = run(truth)
    floor = d(at_truth, real.episodes)
    prior = dict(zip(so.space.names, so.prior_mean.tolist()))
    out: dict[str, Any] = {"floor": floor, "at_prior_mean": d(run(prior), real.episodes)}
    for n in truth:
        eff = d(run({**truth, n: prior[n]}), at_truth)
        out[n] = {"effect": eff, "identifiable": bool(eff > floor)}
    probe.close()
    return out


def identify(name: str, task: dict[str, Any], b: dict[str, Any], work: Path) -> tuple[Any, dict]:
    from simenvs.reality import make_reality

    kw = dict(task["env_kwargs"])
    if task["id_steps"]:
        kw["max_episode_steps"] = task["id_steps"]
    real = make_reality(REALITY, task["env_id"], truth=task["truth"], env_kwargs=kw)
    so, row = run_simopt(task, list(task["truth"]), real, b, work / f"{name}_identify",
                         task["truth"])  # fmt: skip
    real.close()
    return so, {
        "env_id": task["env_id"],
        "method": "simopt_identify",
        "reality": REALITY,
        "data_policy": "scripted expert",
        "prior": "moments of the 'wide' preset",
        **row,
    }


# ---- policies -----------------------------------------------------------------------------


def trainer_for(task: dict[str, Any], b: dict[str, Any]) -> Any:
    """``SB3Trainer`` over the env's shipped config, budgets scaled down (see ``budgets``)."""
    from simenvs.agents.config import load_config
    from simenvs.simopt.training import SB3Trainer

    cfg = load_config(task["env_id"])
    bc = dict(b["bc"])
    ft = dict(b["ft_bc"])
    if cfg.pretrain and int(cfg.pretrain.get("dagger_iters", 0)) == 0:
        bc["dagger_iters"] = ft["dagger_iters"] = 0  # Grasp's expert is cloned without DAgger
    k = task.get("bc_scale", 1)
    bc["episodes"], ft["episodes"] = k * bc["episodes"], k * ft["episodes"]
    algo_kwargs = {**cfg.algo_kwargs, "n_steps": b["n_steps"],
                   "batch_size": b["n_steps"] * b["n_envs"]}  # fmt: skip
    env_kwargs = {**cfg.env_kwargs, **{k: v for k, v in task["env_kwargs"].items()
                                       if k != "object_set"}}  # fmt: skip
    overrides = {
        "env_kwargs": env_kwargs, "n_envs": b["n_envs"], "total_timesteps": b["rl_steps"],
        "algo_kwargs": algo_kwargs, "pretrain": bc, "eval_freq": 0, "final_eval_episodes": 0,
        "video": False, "select_best": False, "checkpoint_freq": 10**9, "torch_threads": 1,
    }  # fmt: skip
    return SB3Trainer(task["env_id"], config=cfg, overrides=overrides,
                      finetune_timesteps=b["rl_steps"], finetune_pretrain=ft)  # fmt: skip


def _request(iteration: int, so: Any, mean: np.ndarray, std: np.ndarray, run_dir: Path,
             previous: Any) -> Any:  # fmt: skip
    from simenvs.randomization.distributions import MultivariateNormal
    from simenvs.simopt import TrainRequest
    from simenvs.simopt.env_params import spec_fragment

    cov = np.diag(np.asarray(std, dtype=float) ** 2)
    return TrainRequest(
        iteration=iteration,
        distribution=MultivariateNormal(tuple(so.space.names), list(mean), cov.tolist()),
        space=so.space,
        spec=spec_fragment(so.refs, np.asarray(mean), cov),
        run_dir=run_dir,
        previous=previous,
    )


def policies(name: str, task: dict[str, Any], so: Any, b: dict[str, Any], work: Path) -> dict:
    """Train M0 on the broad prior, then (a) broad / (b) simopt fine-tunes of it, and the
    oracle (trained and fine-tuned on the truth). Returns {method: policy factory}."""
    trainer = trainer_for(task, b)
    names = list(so.space.names)
    prior_m, prior_s = so.prior_mean, so.prior_std
    adapted = so.opt.distribution()
    truth = np.array([task["truth"][n] for n in names])
    tiny = np.maximum(0.01 * prior_s, 1e-12)  # the oracle's "distribution": the truth itself
    root = work / f"{name}_policies"
    t0 = time.perf_counter()
    m0 = trainer(_request(0, so, prior_m, prior_s, root / "stage1_broad", None))
    _log(f"{name}: stage 1 (broad) trained in {time.perf_counter() - t0:.0f}s")
    out = {"stage1": m0}
    out["broad"] = trainer(_request(1, so, prior_m, prior_s, root / "broad", m0))
    out["simopt"] = trainer(_request(1, so, adapted.mean, adapted.std, root / "simopt", m0))
    o0 = trainer(_request(0, so, truth, tiny, root / "stage1_oracle", None))
    out["oracle"] = trainer(_request(1, so, truth, tiny, root / "oracle", o0))
    _log(f"{name}: policies trained in {time.perf_counter() - t0:.0f}s")
    out["_trainer"] = trainer
    return out


def _success_row(task, method, report, **extra) -> dict[str, Any]:
    return {"env_id": task["env_id"], "method": method, **report, **extra}


def compare_policies(name, task, pols, b) -> list[dict[str, Any]]:
    from simenvs.agents.experts import make as expert
    from simenvs.reality import make_reality
    from simenvs.simopt.training import evaluate_success

    real = make_reality(REALITY, task["env_id"], truth=task["truth"], env_kwargs=task["env_kwargs"])
    rows = []
    n = b["eval_episodes"]
    budget = {"rl_steps_stage1": b["rl_steps"], "rl_steps_finetune": b["rl_steps"],
              "bc_stage1": b["bc"], "bc_finetune": b["ft_bc"]}  # fmt: skip
    desc = {
        "broad": "trained + fine-tuned on the broad prior (SimOpt's starting distribution)",
        "simopt": "broad stage-1 model fine-tuned (warm start) on SimOpt's adapted distribution",
        "oracle": "trained + fine-tuned on the hidden true values",
    }
    for method in ("broad", "simopt", "oracle"):
        t0 = time.perf_counter()
        rep = evaluate_success(pols[method], real, n, seed=50_000)
        rows.append(_success_row(task, f"policy_{method}", rep, reality=REALITY,
                                 description=desc[method], budget=budget,
                                 seconds=round(time.perf_counter() - t0, 1)))  # fmt: skip
        _log(f"{name} {method}: {rep['successes']}/{rep['episodes']} in {REALITY}")
    rep = evaluate_success(expert, real, n, seed=50_000)
    rows.append(_success_row(task, "scripted_expert", rep, reality=REALITY,
                             description="privileged scripted expert (reference)"))  # fmt: skip
    real.close()
    return rows


# ---- engines ------------------------------------------------------------------------------


def effective_pybullet_truth(env_id: str, params: list[str]) -> dict[str, float]:
    """What the MuJoCo sim (nominal mass and kf) must use to match the PyBullet reality:
    thrust_scale absorbs the kf and mass offsets, drag is per unit of nominal mass."""
    from simenvs.reality import make_reality

    real = make_reality("proxy:pybullet", env_id, env_kwargs={"obs_mode": "state"})
    t = real.truth
    p = real.env.unwrapped.quad_params
    real.close()
    accel = (t["dynamics.quad.kf"] / p.kf) * (p.mass / t["dynamics.quad.mass"])
    eff = {
        "dynamics.quad.thrust_scale": t["dynamics.quad.thrust_scale"] * accel,
        "dynamics.quad.motor_tau": t["dynamics.quad.motor_tau"],
    }
    for i in range(3):
        eff[f"dynamics.quad.drag[{i}]"] = (
            t[f"dynamics.quad.drag[{i}]"] * p.mass / t["dynamics.quad.mass"]
        )
    return {n: eff[n] for n in params}


def engines(name, task, pols, b, work) -> list[dict[str, Any]]:
    from simenvs.agents.experts import make as expert
    from simenvs.reality import EnvReality, make_reality
    from simenvs.simopt.training import evaluate_success

    rows = []
    n = b["eval_episodes"]
    kw = task["env_kwargs"]
    mj = EnvReality(task["env_id"], env_kwargs={"randomization": "none", **kw}, name="mujoco")
    pb = make_reality("proxy:pybullet", task["env_id"], env_kwargs=kw)
    who = [("scripted_expert", expert, "privileged scripted expert (model-based, not trained)")]
    if pols:
        who.append(("broad_policy", pols["broad"], "MuJoCo-trained (broad) SB3 policy"))
    for tag, policy, desc in who:
        for label, real in (("mujoco", mj), ("pybullet", pb)):
            t0 = time.perf_counter()
            rep = evaluate_success(policy, real, n, seed=60_000)
            rows.append(_success_row(task, f"engine_gap_{tag}_in_{label}", rep,
                                     reality=real.name, description=desc,
                                     seconds=round(time.perf_counter() - t0, 1)))  # fmt: skip
            _log(f"{name} {tag} in {label}: {rep['successes']}/{rep['episodes']}")
    # SimOpt of the MuJoCo sim against PyBullet rollouts (expert collects)
    params = task["pybullet"]
    truth = effective_pybullet_truth(task["env_id"], params)
    id_kw = dict(kw)
    if task["id_steps"]:
        id_kw["max_episode_steps"] = task["id_steps"]
    pb_id = make_reality("proxy:pybullet", task["env_id"], env_kwargs=id_kw)
    so, row = run_simopt(task, params, pb_id, b, work / f"{name}_pybullet_identify", truth)
    pb_id.close()
    rows.append({"env_id": task["env_id"], "method": "simopt_identify_pybullet",
                 "reality": "proxy:pybullet", "data_policy": "scripted expert",
                 "truth_note": "effective values for the MuJoCo sim (nominal mass, kf)",
                 **row})  # fmt: skip
    # fine-tune the broad stage-1 model on the PyBullet-adapted distribution
    if not pols:
        pb.close()
        mj.close()
        return rows + [steps_per_s(task, b)]
    trainer = pols["_trainer"]
    adapted = so.opt.distribution()
    t0 = time.perf_counter()
    pol = trainer(_request(1, so, adapted.mean, adapted.std, work / f"{name}_pb_policy",
                           pols["stage1"]))  # fmt: skip
    rep = evaluate_success(pol, pb, n, seed=60_000)
    rows.append(_success_row(task, "engine_gap_simopt_policy_in_pybullet", rep,
                             reality=pb.name, seconds=round(time.perf_counter() - t0, 1),
                             description="broad stage-1 model fine-tuned on the distribution "
                                         "SimOpt adapted to PyBullet rollouts"))  # fmt: skip
    _log(f"{name} SimOpt(PyBullet) policy in pybullet: {rep['successes']}/{rep['episodes']}")
    pb.close()
    mj.close()
    return rows + [steps_per_s(task, b)]


def steps_per_s(task: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    from simenvs.pybullet.bench import compare_engines

    name = task["env_id"].split("/")[-1].split("-")[0]
    sps = compare_engines(name, n_steps=b["bench_steps"], repeats=b["bench_repeats"])
    note = "state obs, hover actions, best of interleaved rounds, one process"
    return {"env_id": task["env_id"], "method": "engine_steps_per_s", **sps, "note": note}


# ---- main ---------------------------------------------------------------------------------


def _merge(path: Path, rows: list[dict[str, Any]], meta: dict[str, Any]) -> None:
    """Replace rows with the same (env_id, method), keep the others (runs per task merge)."""
    old = json.loads(path.read_text()) if path.exists() else {}
    keep = {(r["env_id"], r["method"]): r for r in old.get("rows", [])}
    for r in rows:
        keep[(r["env_id"], r["method"])] = r
    meta = {**meta, "budgets": {**old.get("budgets", {}), **meta.get("budgets", {})}}
    payload = {
        "benchmark": "transfer",
        "machine": machine(),
        "time": time.strftime("%F %T"),
        **meta,
        "rows": sorted(keep.values(), key=lambda r: (r["env_id"], r["method"])),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=float) + "\n")
    print(f"wrote {path}")


def table(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        if "params" in r:
            for n, v in r["params"].items():
                lines.append(
                    f"{r['env_id']:27s} {r['method']:26s} {n:30s} truth {v['truth']:.4g} "
                    f"err {100 * v['rel_err_before']:6.1f}% -> {100 * v['rel_err_after']:5.1f}% "
                    f"{'met' if v['met'] else 'NOT met'}"
                    f"{'' if v.get('identifiable', True) else ' (not identifiable)'}"
                )
        elif "success_rate" in r:
            lo, hi = r["ci95"]
            lines.append(
                f"{r['env_id']:27s} {r['method']:40s} {r['successes']:3d}/{r['episodes']:<3d} "
                f"{100 * r['success_rate']:5.1f}% [{100 * lo:.0f}, {100 * hi:.0f}]"
            )
        elif "mujoco_steps_per_s" in r:
            lines.append(
                f"{r['env_id']:27s} steps/s MuJoCo {r['mujoco_steps_per_s']:.0f} PyBullet "
                f"{r['pybullet_steps_per_s']:.0f} (x{r['pybullet_over_mujoco']:.2f})"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small budgets (minutes)")
    ap.add_argument("--envs", default=",".join(TASKS), help=f"subset of {list(TASKS)}")
    ap.add_argument(
        "--parts",
        default="identify,policy,engines",
        help="identify | policy | engines (policy and engines need identify)",
    )
    ap.add_argument("--work", default=None, help="keep run folders here (default: temp)")
    ap.add_argument("--out", default=str(RESULTS / "transfer.json"))
    args = ap.parse_args(argv)
    names = [s.strip() for s in args.envs.split(",") if s.strip()]
    bad = [n for n in names if n not in TASKS]
    if bad:
        ap.error(f"unknown task(s) {bad}; choose from {list(TASKS)}")
    parts = {p.strip() for p in args.parts.split(",")}
    if parts - {"identify", "policy", "engines"}:
        ap.error(f"unknown part(s) {sorted(parts - {'identify', 'policy', 'engines'})}")
    b = budgets(args.quick)
    mode = "quick" if args.quick else "full"
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    try:
        for name in names:
            task = TASKS[name]
            rows: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            so, row = identify(name, task, b, work)
            rows.append(row)
            pols = policies(name, task, so, b, work) if "policy" in parts else None
            if pols:
                rows += compare_policies(name, task, pols, b)
            if "engines" in parts and task["pybullet"]:
                rows += engines(name, task, pols, b, work)
            for r in rows:
                r["mode"] = mode
            _log(f"{name} done in {time.perf_counter() - t0:.0f}s\n{table(rows)}")
            _merge(Path(args.out), rows, {"reality": REALITY, "budgets": {mode: b}})
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    _log(f"all done in {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
