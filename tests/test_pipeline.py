"""``simenvs pipeline``: every stage end to end on a tiny budget, the report, and resuming.

The smoke budget trains for seconds, so success numbers are meaningless here; what is checked
is that each stage really ran (files, the adapted distribution reaching the fine-tune, the
exported policy driving the hardware loop) and that a rerun skips finished stages while a
stage left unfinished runs again.
"""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from simenvs.pipeline import (
    BUDGETS,
    DEFAULT_ENV_ID,
    RECIPES,
    STAGE_NAMES,
    STATE_FILE,
    Context,
    PipelineError,
    add_pipeline_arguments,
    run_pipeline,
    sim_truth,
)


def _quiet() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=120), buf


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    out = tmp_path_factory.mktemp("pipeline") / "run"
    con, buf = _quiet()
    data = run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    return out, data, buf.getvalue()


def test_every_stage_runs_and_writes_its_outputs(smoke_run: tuple[Path, dict, str]) -> None:
    out, data, log = smoke_run
    assert [n for n in STAGE_NAMES if data["stages"][n]["status"] == "done"] == list(STAGE_NAMES)
    for name in STAGE_NAMES:
        assert f"done {name} in" in log
    for rel in [
        "train/model.zip",
        "train/config.json",
        "real/iter_000.npz",
        "simopt/simopt.json",
        "simopt/simopt.png",
        "simopt/distribution.json",
        "finetune/adapted/model.zip",
        "finetune/control/model.zip",
        "oracle/train/model.zip",
        "oracle/finetune/model.zip",
        "export/policy.onnx",
        "export/policy.pt",
        "report/learning_curve.png",
        "report/randomization.png",
        "report/success.png",
        "report.md",
        "report.html",
    ]:
        assert (out / rel).is_file(), rel
    assert (out / data["stages"]["export"]["result"]["metadata"]).is_file()
    video = out / data["stages"]["report"]["result"]["media"]["video"]
    assert video.suffix in (".mp4", ".gif") and video.stat().st_size > 1000
    # the PyBullet reality's hidden airframe in MuJoCo terms: 0.88 * 0.93 / 1.08 thrust-to-weight
    truth = data["stages"]["collect"]["result"]["truth_sim"]
    assert truth["dynamics.quad.thrust_scale"] == pytest.approx(0.88 * 0.93 / 1.08)


def test_report_links_existing_pictures_and_numbers(smoke_run: tuple[Path, dict, str]) -> None:
    out, data, _ = smoke_run
    md = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 4  # success chart, SimOpt convergence, learning curve, contact sheet
    for link in links:
        assert (out / link).is_file(), link
    ev = data["stages"]["eval_real"]["result"]
    for tag in ("before", "after", "control", "oracle", "expert"):
        assert ev[tag]["episodes"] == BUDGETS["smoke"]["real_eval"]
        lo, hi = ev[tag]["ci95"]
        assert 0.0 <= lo <= ev[tag]["success_rate"] <= hi <= 1.0
    assert "95 % CI" in md and "| train |" in md and "policy.onnx" in md
    assert "<img" in (out / "report.html").read_text()


def test_adapted_distribution_reaches_the_finetune_and_not_the_control(
    smoke_run: tuple[Path, dict, str],
) -> None:
    out, data, _ = smoke_run
    so = data["stages"]["simopt"]["result"]
    moved = [n for n in so["mean"] if so["mean"][n] != pytest.approx(so["prior_mean"][n])]
    assert moved, "SimOpt did not update its distribution"
    adapted = json.loads((out / "finetune/adapted/config.json").read_text())["randomization"]
    control = json.loads((out / "finetune/control/config.json").read_text())["randomization"]
    joint = adapted["joint"][0]
    assert joint["mean"][0] == pytest.approx(so["mean"][joint["names"][0]])
    assert "joint" not in control  # the control trains on the original (uniform) prior
    assert control["dynamics.quad.thrust_scale"]["dist"] == "uniform"
    ft = json.loads((out / "finetune/adapted/config.json").read_text())
    assert ft["warm_start_from"].endswith("train")
    # the oracle trains (stage 1 and fine-tune) on the hidden truth, pinned
    truth = data["stages"]["collect"]["result"]["truth_sim"]
    for sub in ("oracle/train", "oracle/finetune"):
        oracle = json.loads((out / sub / "config.json").read_text())["randomization"]
        joint = oracle["joint"][0]
        i = joint["names"].index("dynamics.quad.thrust_scale")
        assert joint["mean"][i] == pytest.approx(truth["dynamics.quad.thrust_scale"])
        assert joint["cov"][i][i] < 1e-5
        assert oracle["dynamics.quad.drag"]["mean"][0] == pytest.approx(
            truth["dynamics.quad.drag[0]"]
        )
    assert json.loads((out / "oracle/finetune/config.json").read_text())[
        "warm_start_from"
    ].endswith("oracle/train")
    hw = data["stages"]["hardware"]["result"]
    assert hw["steps"] == BUDGETS["smoke"]["loop_steps"] and hw["policy_p50_ms"] > 0


def test_rerun_skips_finished_stages_and_redoes_an_unfinished_one(
    smoke_run: tuple[Path, dict, str],
) -> None:
    out, data, _ = smoke_run
    model = out / "train/model.zip"
    mtime = model.stat().st_mtime_ns
    con, buf = _quiet()
    again = run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    log = buf.getvalue()
    assert "done train in" not in log and log.count("skipped") == len(STAGE_NAMES)
    assert again["stages"] == data["stages"]
    assert model.stat().st_mtime_ns == mtime
    # a run killed during the hardware stage: its record and the report never got written
    state = json.loads((out / STATE_FILE).read_text())
    for name in ("hardware", "report"):
        del state["stages"][name]
    (out / STATE_FILE).write_text(json.dumps(state))
    (out / "report.md").unlink()
    con, buf = _quiet()
    third = run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    log = buf.getvalue()
    assert "done hardware in" in log and "done report in" in log
    assert "done train in" not in log and "done simopt in" not in log
    assert (out / "report.md").is_file() and third["stages"]["report"]["status"] == "done"
    assert model.stat().st_mtime_ns == mtime


def test_bad_settings_are_refused_with_clear_errors(
    smoke_run: tuple[Path, dict, str], tmp_path: Path
) -> None:
    out, _, _ = smoke_run
    con, _ = _quiet()
    with pytest.raises(PipelineError, match="different settings.*--fresh"):
        run_pipeline(out=out, budget="quick", console=con)
    with pytest.raises(PipelineError, match="unknown budget 'huge'.*smoke"):
        run_pipeline(out=tmp_path / "a", budget="huge", console=con)
    with pytest.raises(PipelineError, match="no pipeline recipe.*DroneRace"):
        run_pipeline("simenvs/Nope-v0", out=tmp_path / "b", console=con)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(PipelineError, match="not a pipeline run folder"):
        run_pipeline(out=busy, budget="smoke", console=con)
    assert (busy / "notes.txt").exists()
    with pytest.raises(PipelineError, match="different settings.*oracle"):
        run_pipeline(out=out, budget="smoke", console=con)  # started with the oracle
    with pytest.raises(PipelineError, match="unknown budget key 'nope'"):
        run_pipeline(out=tmp_path / "d", budget="smoke", overrides={"nope": 1}, console=con)
    with pytest.raises(PipelineError, match="unknown stage 'x'"):
        run_pipeline(out=tmp_path / "e", budget="smoke", until="x", console=con)
    with pytest.raises(PipelineError, match="cannot stand in.*proxy:nonsense"):
        run_pipeline(out=tmp_path / "c", budget="smoke", real="proxy:nonsense", console=con)


def test_cli_arguments() -> None:
    p = add_pipeline_arguments(argparse.ArgumentParser())
    a = p.parse_args([])
    assert (a.env_id, a.budget, a.resume, a.real) == (DEFAULT_ENV_ID, "quick", True, None)
    a = p.parse_args(["simenvs/RooftopLanding-v0", "--out", "x", "--fresh", "--budget", "full"])
    assert (a.env_id, a.out, a.resume, a.budget) == (
        "simenvs/RooftopLanding-v0",
        "x",
        False,
        "full",
    )
    with pytest.raises(SystemExit):
        p.parse_args(["--resume", "--fresh"])
    assert p.parse_args([]).rerun_from is None
    assert p.parse_args(["--rerun-from", "finetune"]).rerun_from == "finetune"
    with pytest.raises(SystemExit):
        p.parse_args(["--rerun-from", "nope"])


def test_sim_truth_passes_simulator_parameters_through() -> None:
    class Hidden:
        name = "proxy:hidden"
        truth = {"dynamics.quad.mass": 0.9, "dynamics.quad.motor_tau": 0.05}

    assert sim_truth(Hidden(), ["dynamics.quad.mass", "dynamics.quad.kf"]) == {
        "dynamics.quad.mass": 0.9
    }


def test_until_stops_after_a_stage_and_overrides_reach_the_budget(tmp_path: Path) -> None:
    con, buf = _quiet()
    overrides = {"real_eval": 3, "bc": {"epochs": 1}}
    data = run_pipeline(
        out=tmp_path / "r", budget="smoke", console=con, until="eval_sim", overrides=overrides
    )
    assert [n for n, s in data["stages"].items() if s["status"] == "done"] == ["train", "eval_sim"]
    assert "done eval_sim in" in buf.getvalue() and "collect" not in data["stages"]
    values = data["config"]["budget_values"]
    assert values["real_eval"] == 3 and values["bc"]["epochs"] == 1
    assert values["bc"]["episodes"] == BUDGETS["smoke"]["bc"]["episodes"]  # nested: merged
    assert data["config"]["overrides"] == overrides


def _drift(real, steps: int = 48) -> np.ndarray:
    """Horizontal displacement (m) after ``steps`` hover commands in the reality's world."""
    from simenvs.simopt.env_params import expand_params

    env = real.env
    opts = {"params": expand_params(real.truth, env=env)} if real.truth else None
    env.reset(seed=3, options=opts)
    base = env.unwrapped
    p0 = base.quad.v_pos.copy()
    for _ in range(steps):
        env.step(base.hover_action())
    return (base.quad.v_pos - p0)[:2]


def test_recipe_truth_is_the_hidden_world_of_proxy_hidden(tmp_path: Path) -> None:
    env_id = "simenvs/RooftopLanding-v0"
    recipe = RECIPES[env_id]
    assert set(recipe.params) <= set(recipe.truth)  # the oracle needs every adapted param

    def ctx(real: str) -> Context:
        return Context(env_id, tmp_path, "smoke", BUDGETS["smoke"], recipe, real, 0, True,
                       None, log=lambda s: None)  # fmt: skip

    hidden, latency = ctx("proxy:hidden"), ctx("proxy:latency")
    try:
        real = hidden.reality()
        assert sim_truth(real, recipe.params) == recipe.truth
        wind = _drift(real)  # the hidden steady wind (+3, -3) m/s carries the hovering quad
        calm = _drift(latency.reality())  # no hidden part: nominal world, no truth, no wind
        assert latency.reality().truth is None
        assert wind[0] > 0.1 and wind[1] < -0.1, wind
        assert np.all(np.abs(calm) < 0.02), calm
    finally:
        hidden.close()
        latency.close()


def test_changed_recipe_is_refused_and_rerun_from_redoes_only_later_stages(
    smoke_run: tuple[Path, dict, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses
    import shutil

    src, data, _ = smoke_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    monkeypatch.setitem(
        RECIPES, DEFAULT_ENV_ID, dataclasses.replace(RECIPES[DEFAULT_ENV_ID], ft_scale=2)
    )
    con, _ = _quiet()
    with pytest.raises(PipelineError, match=r"recipe\.ft_scale.*--rerun-from"):
        run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    stamp = {p: (out / p / "model.zip").stat().st_mtime_ns for p in ("train", "oracle/train")}
    tuned = (out / "finetune/adapted/model.zip").read_bytes()
    con, buf = _quiet()
    new = run_pipeline(
        out=out, budget="smoke", console=con, oracle=True, rerun_from="finetune", until="eval_real"
    )
    log = buf.getvalue()
    assert "done train in" not in log and "done simopt in" not in log
    assert "done finetune in" in log and "done oracle in" in log and "done eval_real in" in log
    assert {p: (out / p / "model.zip").stat().st_mtime_ns for p in stamp} == stamp
    assert (out / "finetune/adapted/model.zip").read_bytes() != tuned
    st = new["stages"]
    assert st["simopt"] == data["stages"]["simopt"] and "export" not in st
    ft_rounds = 2 * BUDGETS["smoke"]["ft_bc"]["dagger_iters"] + 1
    for stage in ("finetune", "control", "oracle"):
        assert len(st[stage]["result"]["dagger_success"]) == ft_rounds, stage
    assert st["oracle"]["result"]["stage1_reused"] is True
    # unchanged policy files keep their evaluation; the retrained ones are evaluated again
    ev, old_ev = st["eval_real"]["result"], data["stages"]["eval_real"]["result"]
    assert ev["reused"] == ["before", "expert"]
    assert ev["before"] == old_ev["before"] and ev["expert"] == old_ev["expert"]
    rerun = new["reruns"][-1]
    assert rerun["from"] == "finetune" and rerun["changed"] == ["recipe.ft_scale"]
    assert rerun["dropped"] == list(STAGE_NAMES[STAGE_NAMES.index("finetune") :])
    assert new["config"]["recipe"]["ft_scale"] == 2
    con, buf = _quiet()  # the rerun adopted the new values: it continues without the flag
    again = run_pipeline(out=out, budget="smoke", console=con, oracle=True, until="eval_real")
    assert not re.search(r"done \w+ in", buf.getvalue()) and again["stages"] == new["stages"]


def test_finetune_budget_scales_per_recipe_only() -> None:
    def ft(env_id: str) -> dict:
        recipe = RECIPES[env_id]
        return Context(env_id, Path("."), "quick", BUDGETS["quick"], recipe, recipe.reality,
                       0, True, None, log=lambda s: None).pretrain()[1]  # fmt: skip

    base = BUDGETS["quick"]["ft_bc"]
    assert ft(DEFAULT_ENV_ID) == base  # the README's main job: unchanged
    land = ft("simenvs/RooftopLanding-v0")
    scale = RECIPES["simenvs/RooftopLanding-v0"].ft_scale
    assert scale > 1
    assert land["episodes"] == scale * base["episodes"]
    assert land["dagger_iters"] == scale * base["dagger_iters"]
    assert {k: v for k, v in land.items() if k not in ("episodes", "dagger_iters")} == {
        k: v for k, v in base.items() if k not in ("episodes", "dagger_iters")
    }


def test_finetunes_start_from_stage1_data_only_where_the_recipe_keeps_it(
    smoke_run: tuple[Path, dict, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Recipe.ft_keep_data``: off (DroneRace, the README's main job) no dataset is saved and
    every fine-tune starts from nothing; on, all three fine-tunes (adapted, control, oracle from
    the oracle's own stage 1) start their DAgger aggregate from their stage 1's samples."""
    import dataclasses
    import shutil

    from simenvs.agents.pretrain import load_dataset
    from simenvs.agents.run_dir import read_json

    src, _, _ = smoke_run
    assert not list(src.rglob("pretrain_data*"))
    pairs = {"finetune/adapted": "train", "finetune/control": "train",
             "oracle/finetune": "oracle/train"}  # fmt: skip
    for ft in pairs:
        assert "init_samples" not in read_json(src / ft / "metrics.json")["pretrain"]
    out = tmp_path / "run"
    shutil.copytree(src, out)
    monkeypatch.setitem(
        RECIPES, DEFAULT_ENV_ID, dataclasses.replace(RECIPES[DEFAULT_ENV_ID], ft_keep_data=True)
    )
    con, _ = _quiet()
    with pytest.raises(PipelineError, match=r"recipe\.ft_keep_data"):
        run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    with pytest.raises(FileNotFoundError, match=r"train/pretrain_data\.npz.*retrain"):
        run_pipeline(out=out, budget="smoke", console=con, oracle=True, rerun_from="finetune")
    new = run_pipeline(
        out=out, budget="smoke", console=con, oracle=True, rerun_from="train", until="oracle"
    )
    assert new["stages"]["oracle"]["result"]["stage1_reused"] is False  # saved no data before
    for ft, stage1 in pairs.items():
        first = read_json(out / stage1 / "metrics.json")["pretrain"]
        pre = read_json(out / ft / "metrics.json")["pretrain"]
        n1 = first["saved_samples"]
        assert pre["init_samples"] == n1 == first["rounds"][-1]["samples"], ft
        assert pre["rounds"][0]["samples"] > n1, ft
        obs1, _ = load_dataset(out / stage1 / "pretrain_data.npz")
        obs2, _ = load_dataset(out / ft / "pretrain_data.npz")
        assert np.array_equal(np.stack(obs2[:n1]), np.stack(obs1)), ft


def test_adapted_policy_from_scratch_trains_its_own_stage1_on_the_adapted_distribution(
    smoke_run: tuple[Path, dict, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Recipe.adapted_from_scratch``: the adapted policy gets the oracle's treatment (a new
    stage 1 and a fine-tune, both on SimOpt's distribution) instead of a warm start from the
    broad stage 1; the broad stage 1 and SimOpt's result stay as they were."""
    import dataclasses
    import shutil

    from simenvs.agents.run_dir import read_json

    src, data, _ = smoke_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    monkeypatch.setitem(
        RECIPES,
        DEFAULT_ENV_ID,
        dataclasses.replace(RECIPES[DEFAULT_ENV_ID], adapted_from_scratch=True),
    )
    con, _ = _quiet()
    with pytest.raises(PipelineError, match=r"recipe\.adapted_from_scratch"):
        run_pipeline(out=out, budget="smoke", console=con, oracle=True)
    broad = (out / "train/model.zip").read_bytes()
    new = run_pipeline(
        out=out, budget="smoke", console=con, oracle=True, rerun_from="finetune", until="finetune"
    )
    res = new["stages"]["finetune"]["result"]
    assert res["from_scratch"] is True and res["stage1_reused"] is False
    stage1, tuned = out / "finetune/adapted_stage1", out / "finetune/adapted"
    spec = read_json(out / "simopt/distribution.json")["spec"]
    assert res["spec"] == spec
    first = read_json(stage1 / "config.json")
    assert first.get("warm_start_from") is None  # trained from nothing, not from train/
    assert first["randomization"] == read_json(tuned / "config.json")["randomization"]
    assert first["randomization"] != read_json(out / "train/config.json")["randomization"]
    assert read_json(tuned / "simopt_request.json")["warm_start_from"] == str(stage1)
    assert (out / "train/model.zip").read_bytes() == broad
    assert new["stages"]["simopt"] == data["stages"]["simopt"]
    # a rerun of the stage keeps the finished stage 1 trained with this very config
    again = run_pipeline(
        out=out, budget="smoke", console=con, oracle=True, rerun_from="finetune", until="finetune"
    )
    assert again["stages"]["finetune"]["result"]["stage1_reused"] is True


def test_finished_run_compares_values_not_where_the_config_file_lives(tmp_path: Path) -> None:
    """A copied run folder (or a checkout elsewhere) keeps its finished stage 1: the YAML's
    path is provenance, the values it gave are what must agree."""
    from simenvs.pipeline import _finished_run

    cfg = {"env_id": "e", "seed": 0, "total_timesteps": 8, "config_file": "/a/agents/x.yaml"}
    for f in ("model.zip", "metrics.json"):
        (tmp_path / f).write_text("{}")
    (tmp_path / "metrics.json").write_text(json.dumps({"num_timesteps": 8}))
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    assert _finished_run(tmp_path, {**cfg, "config_file": "/b/agents/x.yaml"})
    assert not _finished_run(tmp_path, {**cfg, "seed": 1})
    assert not _finished_run(tmp_path, {**cfg, "total_timesteps": 16})
