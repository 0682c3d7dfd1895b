"""``benchmarks/transfer.py`` bookkeeping: the policy rows it derives from a pipeline run (same
reality and seeds for every policy, the #7 targets judged from the rates) and the merge of
per-task runs into one results file. No training here: the pipeline itself is tested in
``test_pipeline.py``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import transfer  # noqa: E402


def _rep(k: int, n: int = 40) -> dict:
    return {"success_rate": k / n, "ci95": [max(0.0, k / n - 0.1), min(1.0, k / n + 0.1)],
            "successes": k, "episodes": n, "mean_length": 300.0}  # fmt: skip


def _data(before: int, control: int, after: int, oracle: int) -> dict:
    ev = {"reality": "proxy:pybullet", "seed": 50_000, "before": _rep(before),
          "control": _rep(control), "after": _rep(after), "oracle": _rep(oracle),
          "expert": _rep(40)}  # fmt: skip
    stages = {
        "collect": {"truth_sim": {"dynamics.quad.motor_tau": 0.06}},
        "simopt": {"rel_error": {"dynamics.quad.motor_tau": 0.05},
                   "prior_rel_error": {"dynamics.quad.motor_tau": 0.5}},
        "eval_real": ev,
        "train": {}, "finetune": {}, "control": {}, "oracle": {},
    }  # fmt: skip
    return {
        "config": {"env_id": "simenvs/DroneRace-v0", "budget": "quick", "overrides": {},
                   "recipe": {"env_kwargs": {"track": "figure_eight"},
                              "params": ["dynamics.quad.motor_tau"]}},
        "stages": {k: {"status": "done", "seconds": 10.0, "result": v}
                   for k, v in stages.items()},
    }  # fmt: skip


def test_policy_rows_compare_every_policy_on_the_same_episodes() -> None:
    rows = transfer.policy_rows("DroneRace", _data(14, 24, 39, 40))
    by = {r["method"]: r for r in rows}
    assert set(by) == {"policy_stage1", "policy_broad", "policy_simopt", "policy_oracle",
                       "scripted_expert", "policy_comparison"}  # fmt: skip
    pols = [r for r in rows if "success_rate" in r]
    assert {(r["reality"], r["seed"], r["episodes"]) for r in pols} == {
        ("proxy:pybullet", 50_000, 40)
    }
    s = by["policy_comparison"]
    assert (s["broad"], s["simopt"], s["oracle"]) == (0.6, 0.975, 1.0)
    assert s["simopt_ge_broad"] and s["simopt_within_10pt_of_oracle"] and s["target_met"]
    assert s["informative"]
    assert not transfer.policy_rows("DroneRace", _data(0, 2, 3, 2))[-1]["informative"]
    assert s["simopt_param_rel_error"]["dynamics.quad.motor_tau"] == [0.5, 0.05]
    assert s["wall_seconds"] == 70.0


@pytest.mark.parametrize(
    "control, after, oracle, ge, within",
    [(30, 28, 30, False, True), (10, 20, 30, True, False), (20, 26, 30, True, True)],
)
def test_policy_comparison_targets(control, after, oracle, ge, within) -> None:
    s = transfer.policy_rows("DroneRace", _data(0, control, after, oracle))[-1]
    assert (s["simopt_ge_broad"], s["simopt_within_10pt_of_oracle"]) == (ge, within)
    assert s["target_met"] == (ge and within)


def test_merge_replaces_rows_per_task_and_drops_retired_names(tmp_path: Path) -> None:
    path = tmp_path / "transfer.json"
    old = [
        {"env_id": "a", "method": "policy_broad", "v": 1},
        {"env_id": "b", "method": "policy_broad", "v": 1},
        {"env_id": "a", "method": "engine_gap_broad_policy_in_mujoco", "v": 1},
    ]
    path.write_text(json.dumps({"rows": old, "budgets": {"full": {"x": 1}}}))
    transfer._merge(path, [{"env_id": "a", "method": "policy_broad", "v": 2}],
                    {"budgets": {"quick": {"x": 0}}})  # fmt: skip
    d = json.loads(path.read_text())
    assert [(r["env_id"], r["method"], r["v"]) for r in d["rows"]] == [
        ("a", "policy_broad", 2),
        ("b", "policy_broad", 1),
    ]
    assert d["budgets"] == {"full": {"x": 1}, "quick": {"x": 0}}


def test_task_overrides_reach_the_full_pipeline_run_only(monkeypatch, tmp_path: Path) -> None:
    import simenvs.pipeline as pipeline

    seen: dict = {}

    def fake(env_id, root, budget, **kw):
        seen[(env_id, Path(root).name)] = kw["overrides"]
        return {}

    monkeypatch.setattr(pipeline, "run_pipeline", fake)
    for name in ("RooftopLanding", "DroneRace"):
        for mode in ("full", "quick"):
            transfer.run_policies(name, mode, tmp_path)
    land = "simenvs/RooftopLanding-v0"
    assert seen[(land, "RooftopLanding_pipeline_full")] == {"real_eval": 80}
    assert seen[(land, "RooftopLanding_pipeline_quick")]["real_eval"] == 20
    # DroneRace keeps the settings of its recorded run (a resumed run must match them)
    assert seen[("simenvs/DroneRace-v0", "DroneRace_pipeline_full")] == {}


def test_comparison_names_the_common_finetune_budget_and_its_dagger_rounds() -> None:
    data = _data(14, 24, 30, 36)
    data["config"]["budget_values"] = {"ft_bc": {"episodes": 4, "dagger_iters": 4},
                                       "ft_rl_steps": 2048}  # fmt: skip
    data["config"]["recipe"]["ft_scale"] = 2
    curves = {"control": [1.0, 0.5, 1.0], "finetune": [0.5, 0.0, 0.25], "oracle": [1.0, 0.75, 1.0]}
    for k, v in curves.items():
        data["stages"][k]["result"]["dagger_success"] = v
    data["reruns"] = [{"time": "t", "from": "finetune", "changed": ["recipe.ft_scale"]}]
    data["stages"]["eval_real"]["result"]["reused"] = ["before", "expert"]
    s = transfer.policy_rows("DroneRace", data)[-1]
    assert s["finetune_budget"]["ft_scale"] == 2 and s["finetune_budget"]["ft_rl_steps"] == 2048
    assert s["finetune_budget"]["ft_keep_data"] is False  # recorded before it existed: off
    assert s["finetune_dagger_success"] == {
        "broad": curves["control"],
        "simopt": curves["finetune"],
        "oracle": curves["oracle"],
    }
    assert s["reruns"][0]["changed"] == ["recipe.ft_scale"]
    assert s["evaluations_reused"] == ["before", "expert"]
    assert not s["target_met"]  # simopt 75 % < oracle 90 % - 10 points


def test_ft_seed_row_summarizes_every_finetune_seed_and_the_means() -> None:
    main = {**_data(14, 24, 36, 38), "_root": "w/main"}  # broad 60 %, simopt 90 %, oracle 95 %
    rep = {**_data(14, 30, 10, 30), "_root": "w/rep", "_ft_seed": 7}  # 75 %, 25 %, 75 %
    r = transfer.ft_seed_row(main, [rep])
    assert [p["ft_seed"] for p in r["per_seed"]] == [2_000_000, 7]  # PretrainConfig's default
    assert [p["target_met"] for p in r["per_seed"]] == [True, False]
    assert r["per_seed"][1]["ci95"]["simopt"] == _rep(10)["ci95"]
    assert (r["target_met_runs"], r["simopt_ge_broad_runs"], r["runs"]) == (1, 1, 2)
    assert r["mean"] == pytest.approx({"broad": 0.675, "simopt": 0.575, "oracle": 0.85})
    assert not r["target_met_on_means"]
    assert "target met in 1/2" in transfer.table([r])


def test_ft_seed_replicates_rerun_the_finetunes_on_copies(monkeypatch, tmp_path: Path) -> None:
    from simenvs import pipeline

    main_root = tmp_path / "Land_pipeline_full"
    main_root.mkdir()
    main = {**_data(14, 24, 36, 38), "_root": str(main_root)}
    main["config"]["overrides"] = {"real_eval": 80}
    (main_root / "pipeline.json").write_text(json.dumps(main))
    (main_root / "train").mkdir()
    calls = []

    def fake(env_id, root, budget, **kw):
        calls.append((Path(root).name, kw["overrides"], kw["rerun_from"]))
        return json.loads((Path(root) / "pipeline.json").read_text())

    monkeypatch.setattr(pipeline, "run_pipeline", fake)
    for _ in range(2):  # the second time the copy exists: it resumes, nothing is redone
        reps = transfer.run_ft_seed_replicates("Land", "full", tmp_path, [5], main)
    copy = tmp_path / "Land_pipeline_full_ftseed5"
    assert (copy / "train").is_dir() and reps[0]["_ft_seed"] == 5
    want = {"real_eval": 80, "ft_bc": {"seed": 5}}
    assert json.loads((copy / "pipeline.json").read_text())["config"]["overrides"] == want
    assert calls == [(copy.name, want, "finetune"), (copy.name, want, None)]
