"""Transfer benchmark: SimOpt against stand-in realities, and the MuJoCo -> PyBullet gap.

    python benchmarks/transfer.py --quick --envs Grasp     # minutes per task, small budgets
    python benchmarks/transfer.py --envs DroneRace --work runs/transfer   # full, resumable
    python benchmarks/transfer.py --envs Grasp --parts policy

Per task (DroneRace, RooftopLanding, Grasp) it writes rows of ``results/transfer.json``:

1. ``identify``: SimOpt from a broad prior (moments of the env's "wide" randomization) against
   ``proxy:hidden+noise`` whose hidden values sit just outside that prior on the side that
   hurts. The scripted expert collects the data (RL budgets on this machine are too small
   for an RL policy to be a good data collector). Error of each adapted mean before/after;
   target: within 10 % of the truth or error cut >= 5x, in <= 5 iterations with <= 10 real
   rollouts per iteration.
2. ``policy``: the README's main job (``simenvs.pipeline``, the env's ``RECIPES`` entry) with
   its oracle stage on, stopped after evaluation. Policies, all with the same training budget
   (BC + DAgger from the scripted expert + PPO; full mode: the pipeline's measured "quick"
   budget, quick mode: fewer rounds, see ``POLICY_BUDGETS``) and evaluated in the recipe's
   stand-in reality on the same episode seeds (Wilson 95 % CIs):
   ``policy_stage1`` (trained on the env's default randomization, which collects the real
   rollouts), ``policy_broad`` (stage 1 + a fine-tune on that prior), ``policy_simopt``
   (stage 1 + the same fine-tune on SimOpt's adapted distribution; RooftopLanding's recipe
   trains a stage 1 and the fine-tune both on that distribution instead,
   ``Recipe.adapted_from_scratch``), ``policy_oracle`` (stage 1 and fine-tune both on the
   hidden true values), ``scripted_expert`` (reference). A
   ``policy_comparison`` row puts broad / simopt / oracle side by side and judges the target:
   simopt >= broad and within 10 points of the oracle (``informative``: the oracle succeeds
   >= 50 %; below that the target holds trivially and says nothing).
   Stand-in realities (chosen so that the broad prior hurts): DroneRace flies the figure-eight
   track against ``proxy:pybullet`` (the task on the second engine with hidden airframe
   offsets: slower motors, weaker thrust, more drag); RooftopLanding lands on empty roofs
   against ``proxy:hidden`` with a steady 3 m/s-per-axis wind (the recipe's ``truth``; the
   PyBullet airframe did not hurt landing, see ``simenvs.pipeline.RECIPES``), with the
   recipe's doubled fine-tune (``ft_scale``: 8 expert episodes + 8 DAgger rounds for each of
   the three fine-tunes; the policy comparison row records it as ``finetune_budget`` with each
   fine-tune's DAgger rounds) and is evaluated on 80 episodes (``policy_overrides``); Grasp
   against ``proxy:hidden`` (actuator gain and object mass just outside the training prior,
   ``edge_truth``). The oracle's "true values" are the reality's truth in the simulator's
   parameters (``simenvs.pipeline.sim_truth``: for PyBullet the effective thrust_scale and
   drag of a MuJoCo quad with nominal mass and kf). After a recipe or budget change,
   ``--rerun-from finetune`` on a copy of a finished ``--work`` folder redoes only the
   fine-tunes (the oracle's stage 1 and unchanged policies' evaluations are kept).
3. ``engines`` (drone tasks, #8): the scripted expert and the MuJoCo-trained policy before
   (stage 1) and after SimOpt against PyBullet rollouts (the pipeline's fine-tune) in MuJoCo
   (nominal dynamics) and in PyBullet (``proxy:pybullet``), same seeds; the policy rows need
   a policy-part run against ``proxy:pybullet`` (DroneRace's recipe) and name it
   (``pipeline_run``, ``pipeline_reality``): RooftopLanding's rows come from an earlier run
   against PyBullet, not from the proxy:hidden run of its policy_* rows; SimOpt of the MuJoCo
   sim from expert rollouts in PyBullet (errors against the *effective* truth: MuJoCo keeps
   nominal mass and kf, so thrust_scale absorbs kf and mass, and drag is per unit of nominal
   mass); env steps/s of both engines.

Pipeline runs live in ``--work`` (default: a temporary folder) as ``NAME_pipeline_MODE`` and
resume when rerun with the same ``--work``. Run tasks one by one (``--envs``); rows merge into
the results file.
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
        # full mode: more evaluation episodes (these policies land 40-90 %, so 40 episodes
        # left +-15 point CIs that decided the comparison)
        "policy_overrides": {"real_eval": 80},
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
    },
}  # fmt: skip

REALITY = "proxy:hidden+noise"  # of the identification rows; policy rows: the recipe's
INFORMATIVE_ORACLE = 0.5  # oracle success below this: the policy comparison is not informative
RETIRED = {  # row names of earlier versions, dropped on merge
    "engine_gap_broad_policy_in_mujoco", "engine_gap_broad_policy_in_pybullet",
    "engine_gap_simopt_policy_in_pybullet",
}  # fmt: skip


def budgets(quick: bool) -> dict[str, Any]:
    """Identification and engine-gap budgets (the policy part uses ``POLICY_BUDGETS``)."""
    if quick:
        return {
            "iterations": 3, "real_episodes": 3, "samples": 12, "updates": 2,
            "episodes_per_sample": 2, "eval_episodes": 10, "bench_steps": 400, "bench_repeats": 2,
        }  # fmt: skip
    return {
        "iterations": 5, "real_episodes": 5, "samples": 16, "updates": 3,
        "episodes_per_sample": 3, "eval_episodes": 30, "bench_steps": 2000, "bench_repeats": 3,
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

# The policy comparison is the README's main job (``simenvs.pipeline``) with its oracle stage
# on, stopped after evaluation. Full: the pipeline's measured "quick" budget as is (BC + 14
# DAgger rounds + PPO, 40 evaluation episodes); quick: fewer rounds and episodes.
POLICY_BUDGETS: dict[str, dict[str, Any]] = {
    "full": {"budget": "quick", "overrides": {}},
    "quick": {
        "budget": "quick",
        "overrides": {
            "bc": {"dagger_iters": 6}, "ft_bc": {"dagger_iters": 2}, "rl_steps": 1024,
            "ft_rl_steps": 1024, "iterations": 2, "sim_eval": 5, "real_eval": 20,
        },
    },
}  # fmt: skip

_TAGS = {  # pipeline eval_real tag -> (row method, description)
    "before": ("policy_stage1", "stage 1 only: BC + DAgger + PPO on the training prior"),
    "control": ("policy_broad", "stage 1 + one fine-tune on the training prior (broad)"),
    "after": ("policy_simopt", "stage 1 + one fine-tune on SimOpt's adapted distribution"),
    "oracle": ("policy_oracle", "stage 1 + one fine-tune, both on the hidden true values"),
    "expert": ("scripted_expert", "privileged scripted expert (reference, not trained)"),
}


def run_policies(
    name: str, mode: str, work: Path, seed: int = 0, rerun_from: str | None = None
) -> dict[str, Any]:
    """The pipeline (train, collect, SimOpt, fine-tunes, control, oracle, evaluation) for one
    task; resumes a run left in ``work`` (``rerun_from``: redo that stage and the later ones
    with the current recipe/budget values). Returns its ``pipeline.json`` contents."""
    from simenvs.pipeline import run_pipeline

    pb = POLICY_BUDGETS[mode]
    overrides = dict(pb["overrides"])
    if mode == "full":
        overrides.update(TASKS[name].get("policy_overrides", {}))
    root = work / f"{name}_pipeline_{mode}"
    data = run_pipeline(
        TASKS[name]["env_id"], root, pb["budget"], seed=seed, oracle=True, until="eval_real",
        overrides=overrides, rerun_from=rerun_from,
    )  # fmt: skip
    return {**data, "_root": str(root)}


def run_ft_seed_replicates(
    name: str, mode: str, work: Path, seeds: list[int], main: dict[str, Any], seed: int = 0
) -> list[dict[str, Any]]:
    """The three fine-tunes again with other DAgger episode seeds (``ft_bc.seed``), each on a
    copy of the finished main run ``main`` (``run_policies``): same stage 1, SimOpt, budget,
    oracle stage 1 and evaluation episodes, so the spread measures the fine-tunes alone.
    Copies live next to it as ``..._ftseedS`` and resume when rerun."""
    from simenvs.pipeline import STATE_FILE, run_pipeline

    main_root = Path(main["_root"])
    base = dict(main["config"].get("overrides") or {})
    out = []
    for s in seeds:
        root = main_root.parent / f"{main_root.name}_ftseed{s}"
        overrides = {**base, "ft_bc": {**base.get("ft_bc", {}), "seed": int(s)}}
        rerun = None
        if not (root / STATE_FILE).exists():
            shutil.copytree(main_root, root)
            state = json.loads((root / STATE_FILE).read_text())
            state["config"]["overrides"] = overrides  # the copy's only other setting
            (root / STATE_FILE).write_text(json.dumps(state, indent=1))
            rerun = "finetune"
        data = run_pipeline(
            main["config"]["env_id"], root, main["config"]["budget"], seed=seed, oracle=True,
            until="eval_real", overrides=overrides, rerun_from=rerun,
        )  # fmt: skip
        out.append({**data, "_root": str(root), "_ft_seed": int(s)})
    return out


def ft_seed_row(main: dict[str, Any], replicates: list[dict[str, Any]]) -> dict[str, Any]:
    """Broad / SimOpt / oracle success per fine-tune seed (the main run's and each
    replicate's), their means and how often the #7 target holds."""
    from simenvs.agents.pretrain import PretrainConfig

    ft_bc = (main["config"].get("overrides") or {}).get("ft_bc", {})
    runs = [(int(ft_bc.get("seed", PretrainConfig.seed)), main)]
    runs += [(r["_ft_seed"], r) for r in replicates]
    per = []
    for s, d in runs:
        ev = d["stages"]["eval_real"]["result"]
        r = {t: ev[k]["success_rate"] for t, k in (("broad", "control"), ("simopt", "after"),
                                                   ("oracle", "oracle"))}  # fmt: skip
        r["simopt_ge_broad"] = bool(r["simopt"] >= r["broad"])
        r["target_met"] = bool(r["simopt_ge_broad"] and r["oracle"] - r["simopt"] <= 0.10 + 1e-9)
        ci = {t: ev[k]["ci95"] for t, k in (("broad", "control"), ("simopt", "after"),
                                             ("oracle", "oracle"))}  # fmt: skip
        per.append({"ft_seed": s, **r, "ci95": ci, "episodes": ev["after"]["episodes"],
                    "run": str(d.get("_root"))})  # fmt: skip
    mean = {t: float(np.mean([p[t] for p in per])) for t in ("broad", "simopt", "oracle")}
    cfg = main["config"]
    return {
        "env_id": cfg["env_id"], "method": "policy_comparison_ft_seeds",
        "reality": main["stages"]["eval_real"]["result"]["reality"],
        "description": "the three fine-tunes repeated with other DAgger episode seeds on the "
                       "same stage 1, SimOpt result, oracle stage 1 and evaluation episodes",
        "per_seed": per, "mean": mean,
        "simopt_ge_broad_runs": sum(p["simopt_ge_broad"] for p in per),
        "target_met_runs": sum(p["target_met"] for p in per), "runs": len(per),
        "target_met_on_means": bool(mean["simopt"] >= mean["broad"]
                                    and mean["oracle"] - mean["simopt"] <= 0.10 + 1e-9),
    }  # fmt: skip


def policy_rows(name: str, data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per policy (same reality, same episode seeds) plus a side-by-side summary."""
    st = {k: v["result"] for k, v in data["stages"].items() if v.get("status") == "done"}
    secs = {k: v["seconds"] for k, v in data["stages"].items() if "seconds" in v}
    cfg = data["config"]
    ev, so, col = st["eval_real"], st["simopt"], st["collect"]
    env_id = cfg["env_id"]
    common = {
        "reality": ev["reality"], "seed": ev["seed"], "task": cfg["recipe"]["env_kwargs"],
        "adapted_params": cfg["recipe"]["params"], "hidden_truth_sim": col["truth_sim"],
        "pipeline_budget": cfg["budget"], "budget_overrides": cfg.get("overrides", {}),
    }  # fmt: skip
    rows = []
    scratch = bool(cfg["recipe"].get("adapted_from_scratch", False))
    for tag, (method, desc) in _TAGS.items():
        if tag == "after" and scratch:
            desc = "stage 1 + one fine-tune, both on SimOpt's adapted distribution (from scratch)"
        if tag in ev:
            rows.append({"env_id": env_id, "method": method, **ev[tag], **common,
                         "description": desc})  # fmt: skip
    rel = so.get("rel_error") or {}
    prior_rel = so.get("prior_rel_error") or {}
    rates = {t: ev[t]["success_rate"] for t in ("control", "after", "oracle") if t in ev}
    summary = {
        "env_id": env_id, "method": "policy_comparison", "reality": ev["reality"],
        "episodes": ev["after"]["episodes"], "seed": ev["seed"],
        "broad": rates.get("control"), "simopt": rates.get("after"),
        "oracle": rates.get("oracle"), "stage1": ev["before"]["success_rate"],
        "ci95": {t: ev[k]["ci95"] for t, k in (("broad", "control"), ("simopt", "after"),
                                              ("oracle", "oracle"), ("stage1", "before"))
                 if k in ev},
        "simopt_param_rel_error": {n: [prior_rel.get(n), rel.get(n)] for n in rel},
        "train_seconds": {k: secs[k] for k in ("train", "finetune", "control", "oracle")
                          if k in secs},
        "wall_seconds": round(sum(secs.values()), 1),
    }  # fmt: skip
    # The fine-tune every policy but stage 1 got (one budget for all three) and how its DAgger
    # rounds went in each distribution (success of the policy's own rollouts per round).
    bv, rec = cfg.get("budget_values") or {}, cfg["recipe"]
    if bv:
        summary["finetune_budget"] = {
            "ft_bc": bv.get("ft_bc"), "ft_rl_steps": bv.get("ft_rl_steps"),
            "ft_scale": rec.get("ft_scale", 1), "bc_scale": rec.get("bc_scale", 1),
            "ft_keep_data": rec.get("ft_keep_data", False),
            "adapted_from_scratch": scratch,
        }  # fmt: skip
    summary["finetune_dagger_success"] = {
        t: st[k].get("dagger_success") for t, k in (("broad", "control"), ("simopt", "finetune"),
                                                    ("oracle", "oracle"))
        if st.get(k, {}).get("dagger_success") is not None
    }  # fmt: skip
    if st.get("oracle", {}).get("stage1_reused"):
        # its stage 1 finished in an earlier session: not in train_/wall_seconds
        summary["oracle_stage1_reused"] = True
    if data.get("reruns"):
        summary["reruns"] = [{k: r.get(k) for k in ("time", "from", "changed")}
                             for r in data["reruns"]]  # fmt: skip
        if ev.get("reused"):
            summary["evaluations_reused"] = ev["reused"]
    if None not in (summary["broad"], summary["simopt"], summary["oracle"]):
        summary["simopt_ge_broad"] = bool(summary["simopt"] >= summary["broad"])
        summary["simopt_within_10pt_of_oracle"] = bool(
            summary["oracle"] - summary["simopt"] <= 0.10 + 1e-9
        )
        summary["target_met"] = (
            summary["simopt_ge_broad"] and summary["simopt_within_10pt_of_oracle"]
        )
        # When even the oracle mostly fails, the comparison says nothing about adaptation.
        summary["informative"] = bool(summary["oracle"] >= INFORMATIVE_ORACLE)
    return rows + [summary]


# ---- engines ------------------------------------------------------------------------------


def effective_pybullet_truth(env_id: str, params: list[str]) -> dict[str, float]:
    """What the MuJoCo sim (nominal mass and kf) must use to match the PyBullet reality:
    thrust_scale absorbs the kf and mass offsets, drag is per unit of nominal mass
    (``simenvs.pipeline.sim_truth``)."""
    from simenvs.pipeline import sim_truth
    from simenvs.reality import make_reality

    real = make_reality("proxy:pybullet", env_id, env_kwargs={"obs_mode": "state"})
    try:
        return sim_truth(real, params)
    finally:
        real.close()


def engines(name: str, task: dict[str, Any], b: dict[str, Any], work: Path,
            data: dict[str, Any] | None) -> list[dict[str, Any]]:  # fmt: skip
    """MuJoCo vs PyBullet: the scripted expert and (with ``data``, a pipeline run against
    ``proxy:pybullet``) the MuJoCo-trained policy before and after SimOpt in both engines;
    SimOpt of the MuJoCo sim from expert rollouts in PyBullet; env steps/s of both."""
    from simenvs.agents.experts import make as expert
    from simenvs.pipeline import REAL_EVAL_SEED, RECIPES
    from simenvs.reality import EnvReality, make_reality
    from simenvs.simopt.training import SB3PolicyFactory, evaluate_success

    rows = []
    kw = dict(RECIPES[task["env_id"]].env_kwargs)
    mj = EnvReality(task["env_id"], env_kwargs={"randomization": "none", **kw},
                    name="mujoco (nominal)")  # fmt: skip
    pb = make_reality("proxy:pybullet", task["env_id"], env_kwargs=kw)
    n = b["eval_episodes"]
    for label, real in (("mujoco", mj), ("pybullet", pb)):
        t0 = time.perf_counter()
        rep = evaluate_success(expert, real, n, seed=REAL_EVAL_SEED)
        rows.append({"env_id": task["env_id"], "method": f"engine_gap_scripted_expert_in_{label}",
                     **rep, "task": kw, "seed": REAL_EVAL_SEED,
                     "description": "privileged scripted expert (model-based, not trained)",
                     "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        _log(f"{name} expert in {label}: {rep['successes']}/{rep['episodes']}")
    if data is not None and data["config"]["real"].startswith("proxy:pybullet"):
        root = Path(data["_root"])
        ev = data["stages"]["eval_real"]["result"]
        runs = {"before": ("train", "MuJoCo-trained policy (stage 1, training prior)"),
                "after": ("finetune/adapted", "stage 1 fine-tuned on the distribution SimOpt "
                                              "adapted to PyBullet rollouts")}  # fmt: skip
        # Which pipeline run the policies come from: the policy_* rows of the same task are
        # the same evaluation only when the policy part ran against proxy:pybullet too.
        src = {"pipeline_run": str(root), "pipeline_reality": data["config"]["real"],
               "pipeline_created": data.get("created")}  # fmt: skip
        same = (f"the pipeline eval_real of {root} against {data['config']['real']} (the same "
                "evaluation as this task's policy_* rows, from the same run)")  # fmt: skip
        for tag, (sub, desc) in runs.items():
            t0 = time.perf_counter()
            rep = evaluate_success(SB3PolicyFactory(str(root / sub)), mj, ev[tag]["episodes"],
                                   seed=ev["seed"])  # fmt: skip
            rows.append({"env_id": task["env_id"], "method": f"engine_gap_policy_{tag}_in_mujoco",
                         **rep, "task": kw, "seed": ev["seed"], "description": desc, **src,
                         "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
            rows.append({"env_id": task["env_id"],
                         "method": f"engine_gap_policy_{tag}_in_pybullet", **ev[tag],
                         "task": kw, "seed": ev["seed"], "description": desc, **src,
                         "note": same})  # fmt: skip
            _log(f"{name} policy {tag}: MuJoCo {rep['successes']}/{rep['episodes']}, "
                 f"PyBullet {ev[tag]['successes']}/{ev[tag]['episodes']}")  # fmt: skip
    elif data is not None:
        _log(
            f"{name}: the policy run is against {data['config']['real']}, not proxy:pybullet: "
            "no engine_gap_policy_* rows (earlier ones stay, naming their pipeline_run)"
        )
    pb.close()
    mj.close()
    # SimOpt of the MuJoCo sim against PyBullet rollouts (expert collects)
    params = task["pybullet"]
    truth = effective_pybullet_truth(task["env_id"], params)
    id_kw = dict(task["env_kwargs"])
    if task["id_steps"]:
        id_kw["max_episode_steps"] = task["id_steps"]
    pb_id = make_reality("proxy:pybullet", task["env_id"], env_kwargs=id_kw)
    _, row = run_simopt(task, params, pb_id, b, work / f"{name}_pybullet_identify", truth)
    pb_id.close()
    rows.append({"env_id": task["env_id"], "method": "simopt_identify_pybullet",
                 "reality": "proxy:pybullet", "data_policy": "scripted expert",
                 "truth_note": "effective values for the MuJoCo sim (nominal mass, kf)",
                 **row})  # fmt: skip
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
    keep = {(r["env_id"], r["method"]): r for r in old.get("rows", [])
            if r["method"] not in RETIRED}  # fmt: skip
    for r in rows:
        keep[(r["env_id"], r["method"])] = r
    for key in ("budgets", "policy_budgets"):
        meta[key] = {**old.get(key, {}), **meta.get(key, {})}
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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


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
        elif r["method"] == "policy_comparison":
            lines.append(
                f"{r['env_id']:27s} {r['method']:26s} in {r['reality']}: broad "
                f"{_pct(r['broad'])} | simopt {_pct(r['simopt'])} | oracle {_pct(r['oracle'])}"
                f" (stage 1 {_pct(r['stage1'])}) -> target "
                f"{'met' if r.get('target_met') else 'NOT met'}"
                f"{'' if r.get('informative', True) else ' (not informative: oracle fails)'}"
            )
        elif r["method"] == "policy_comparison_ft_seeds":
            per = " ; ".join(
                f"{p['ft_seed']}: {_pct(p['broad'])}/{_pct(p['simopt'])}/{_pct(p['oracle'])}"
                for p in r["per_seed"]
            )
            m = r["mean"]
            lines.append(
                f"{r['env_id']:27s} {r['method']:26s} broad/simopt/oracle per DAgger seed {per}"
                f" -> mean {_pct(m['broad'])}/{_pct(m['simopt'])}/{_pct(m['oracle'])}, target "
                f"met in {r['target_met_runs']}/{r['runs']}"
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
        help="identify | policy | engines (engines uses the policy run when there is one)",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the policy pipeline runs")
    ap.add_argument("--work", default=None, help="keep run folders here (default: temp)")
    ap.add_argument(
        "--rerun-from",
        default=None,
        metavar="STAGE",
        help="policy part: redo this pipeline stage and the later ones of the runs in --work "
        "with the current recipe/budget values (simenvs.pipeline rerun_from)",
    )
    ap.add_argument(
        "--ft-seeds",
        default="",
        metavar="S1,S2",
        help="policy part: repeat the three fine-tunes with these DAgger episode seeds on "
        "copies of the finished run (a policy_comparison_ft_seeds row)",
    )
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
    import torch

    # Policies act one observation at a time: a second torch thread only contends with the
    # envs (on 2 busy cores a MuJoCo evaluation ran 10x slower with torch's default threads).
    torch.set_num_threads(1)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="transfer-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    try:
        for name in names:
            task = TASKS[name]
            rows: list[dict[str, Any]] = []
            t0 = time.perf_counter()
            if "identify" in parts:
                rows.append(identify(name, task, b, work)[1])
            data = (
                run_policies(name, mode, work, args.seed, args.rerun_from)
                if "policy" in parts
                else None
            )
            if data is not None:
                rows += policy_rows(name, data)
                if args.ft_seeds:
                    seeds = [int(x) for x in args.ft_seeds.split(",") if x.strip()]
                    reps = run_ft_seed_replicates(name, mode, work, seeds, data, args.seed)
                    spread = ft_seed_row(data, reps)
                    rows.append(spread)
                    for r in rows:  # one fine-tune seed's verdict is not the whole story
                        if r["method"] == "policy_comparison":
                            r["note"] = (
                                f"one fine-tune seed; over {spread['runs']} fine-tune seeds "
                                f"the target held in {spread['target_met_runs']} (means: "
                                + ", ".join(f"{k} {100 * v:.0f} %"
                                            for k, v in spread["mean"].items())
                                + "), see policy_comparison_ft_seeds"
                            )  # fmt: skip
            if "engines" in parts and task["pybullet"]:
                rows += engines(name, task, b, work, data)
            for r in rows:
                r["mode"] = mode
            _log(f"{name} done in {time.perf_counter() - t0:.0f}s\n{table(rows)}")
            meta = {"reality": REALITY, "budgets": {mode: b},
                    "policy_budgets": {mode: POLICY_BUDGETS[mode]}}  # fmt: skip
            _merge(Path(args.out), rows, meta)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    _log(f"all done in {time.perf_counter() - t_all:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
