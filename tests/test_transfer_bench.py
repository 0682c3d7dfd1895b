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
