"""Regenerate the README's benchmark tables from benchmarks/results/*.json.

    python benchmarks/readme_tables.py            # rewrite README.md between the markers
    python benchmarks/readme_tables.py --print    # print the tables only

Every number in the README's benchmark section comes from a results file written by a script in
this folder, so the README cannot drift from what was measured.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- BENCHMARK TABLES START -->", "<!-- BENCHMARK TABLES END -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _n(x: Any, digits: int = 0) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, float)):
        return f"{x:,.{digits}f}"
    return str(x)


def _pct(x: Any) -> str:
    return "–" if x is None else f"{100 * x:.0f} %"


def _ci(row: dict[str, Any]) -> str:
    ci = row.get("ci95")
    if row.get("success_rate") is None:
        return "–"
    s = _pct(row["success_rate"])
    return f"{s} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else s


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _when(d: dict[str, Any]) -> str:
    load = d.get("load_avg_start") or (d.get("machine") or {}).get("load_avg")
    extra = f", load average {load:.1f}" if isinstance(load, (int, float)) else ""
    return f"*{d.get('benchmark', '')} — {d.get('time', '')}{extra}*"


def core() -> str | None:
    d = _load("core")
    if not d:
        return None
    rows = [
        ["render 64×64 (frames/s)", _n(d.get("render_fps_64"))],
        ["render 128×128 (frames/s)", _n(d.get("render_fps_128"))],
        [
            f"reset: sample + apply randomization, {d.get('textured_geoms')} textured geoms (ms)",
            _n(d.get("randomization_total_ms"), 2) + " (target ≤ 2)",
        ],
        ["full reset, state obs (ms)", _n(d.get("reset_ms_state_obs"), 2)],
        ["regenerate + upload all textures, before a render (ms)",
         _n(d.get("texture_regen_upload_ms"), 2)],
    ]  # fmt: skip
    return "### Base: rendering and reset (`benchmarks/bench_core.py`)\n\n" + _table(
        ["figure", "value"], rows
    )


def env_speed() -> str | None:
    rows = []
    for name, env_id in (
        ("drone_race", "DroneRace"),
        ("rooftop_landing", "RooftopLanding"),
    ):
        d = _load(name)
        if not d:
            continue
        rows.append(
            [
                env_id,
                _n(d.get("raw_mj_step_per_s")),
                _n(d.get("physics_ceiling_env_steps_per_s")),
                _n(d.get("env_steps_per_s_state")),
                _n(d.get("env_steps_per_s_rgb_64x64")),
                "1,371 / 157",
            ]
        )
    g = _load("grasp")
    if g:
        st = {s["obs_mode"]: s for s in g.get("steps", [])}
        s, r = st.get("state", {}), st.get("rgb", {})
        rows.append(
            [
                "Grasp (84×84 rgb)",
                _n(s.get("raw_mj_step_per_s_at_rest")),
                _n(s.get("replay_env_equivalent_steps_per_cpu_s")),
                _n(s.get("env_steps_per_cpu_s")),
                _n(r.get("env_steps_per_cpu_s")),
                "KukaDiverseObject ≈ 3",
            ]
        )
    if not rows:
        return None
    head = ["env", "raw mj_step/s", "physics ceiling (env steps/s)", "env steps/s, state",
            "env steps/s, camera", "peer (state / camera)"]  # fmt: skip
    return (
        "### Single env speed, per CPU-second of one core (`benchmarks/bench_*.py`)\n\n"
        "The drone figures use 240 Hz physics and 48 Hz control, the same rates as the "
        "gym-pybullet-drones peer figures (1,371 state / 157 64×48 RGB steps/s on this machine "
        "kind).\n\n" + _table(head, rows)
    )


def throughput() -> str | None:
    d = _load("throughput")
    if not d:
        return None
    rows = []
    for env, e in d.get("envs", {}).items():
        for r in e.get("results", []):
            rows.append(
                [
                    env,
                    r.get("obs", ""),
                    r.get("mode", ""),
                    _n(r.get("workers")),
                    _n(r.get("num_envs")),
                    _n(r.get("steps_per_s")),
                    _pct(r.get("frac_of_limit")),
                    _n(r.get("rtf_per_core")),
                ]
            )
    head = ["env", "obs", "mode", "workers/threads", "envs", "env steps/s", "of physics limit",
            "× real time per core"]  # fmt: skip
    plot = "\n\n![scaling](benchmarks/results/throughput_scaling.png)"
    has_plot = (RESULTS / "throughput_scaling.png").is_file()
    return (
        "### Parallel throughput (`benchmarks/throughput.py`)\n\n" + _when(d) + "\n\n"
        + _table(head, rows) + (plot if has_plot else "")
    )  # fmt: skip


def training() -> str | None:
    d = _load("training")
    if not d:
        return None
    rows = []
    for r in d.get("rows", []):
        s = r.get("success") or {}
        ci = s.get("ci95") or [None, None]
        rows.append(
            [
                r.get("env_id", ""),
                r.get("algo", ""),
                f"{_pct(s.get('mean'))} [{_pct(ci[0])}, {_pct(ci[1])}]",
                _n(r.get("steps")),
                _n((r.get("wall_time_s") or 0) / 60, 1),
                str(r.get("device", "")),
                _n(r.get("target_met")),
            ]
        )
    head = ["env", "algo", "success on held-out seeds (95 % CI)", "steps", "wall min", "device",
            "target met"]  # fmt: skip
    return "### Training (`benchmarks/training.py`)\n\n" + _table(head, rows)


def transfer() -> str | None:
    d = _load("transfer")
    if not d:
        return None
    rows = []
    for r in d.get("rows", []):
        if "success_rate" not in r:
            continue
        rows.append(
            [
                r.get("env_id", "").replace("simenvs/", ""),
                r.get("method", ""),
                r.get("reality", ""),
                _ci(r),
                _n(r.get("episodes")),
                r.get("mode", ""),
            ]
        )
    head = ["env", "policy", "evaluated in", "success (95 % CI)", "episodes", "budget"]
    ident = []
    for r in d.get("rows", []):
        params = r.get("params")
        if r.get("method", "").startswith("simopt_identify") and isinstance(params, dict):
            for name, p in params.items():
                if not isinstance(p, dict):
                    continue
                ident.append(
                    [
                        r.get("env_id", "").replace("simenvs/", ""),
                        r.get("reality", ""),
                        name,
                        _n(p.get("truth"), 3),
                        _n(p.get("prior_mean"), 3),
                        _n(p.get("mean"), 3),
                        f"{_pct(p.get('rel_err_before'))} → {_pct(p.get('rel_err_after'))}",
                        _n(p.get("identifiable")),
                        _n(p.get("met")),
                    ]
                )
    out = "### Sim-to-real transfer with SimOpt (`benchmarks/transfer.py`)\n\n" + _when(d) + "\n\n"
    comparison = _policy_comparison(d.get("rows", []))
    if comparison:
        out += comparison + "\n\n"
    speeds = [
        [
            r["env_id"].replace("simenvs/", ""),
            _n(r.get("mujoco_steps_per_s")),
            _n(r.get("pybullet_steps_per_s")),
            f"{r.get('pybullet_over_mujoco', 0):.2f}",
        ]
        for r in d.get("rows", [])
        if r.get("method") == "engine_steps_per_s"
    ]
    if speeds:
        head_s = ["env", "MuJoCo env steps/s", "PyBullet env steps/s", "PyBullet / MuJoCo"]
        out += _table(head_s, speeds) + "\n\n"
    if ident:
        out += _table(
            ["env", "reality", "parameter", "hidden truth", "prior mean", "adapted mean",
             "error", "identifiable", "target met"], ident,
        ) + "\n\n"  # fmt: skip
    return out + _table(head, rows)


def _policy_comparison(rows: list[dict[str, Any]]) -> str | None:
    """One line per task: the four policies side by side in the same reality and seeds."""

    def cell(r: dict[str, Any], key: str) -> str:
        ci = (r.get("ci95") or {}).get(key)
        s = _pct(r.get(key))
        return f"{s} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else s

    seeds = {r["env_id"]: r for r in rows if r.get("method") == "policy_comparison_ft_seeds"}
    lines = []
    for r in rows:
        if r.get("method") != "policy_comparison":
            continue
        env = r["env_id"].replace("simenvs/", "")
        rep = seeds.get(r["env_id"])
        verdict = _n(r.get("target_met")) + (
            "" if r.get("informative", True) else " (not informative)"
        )
        if rep:  # one fine-tune seed of several: the verdict belongs to the replicates
            verdict += f" (this seed; {rep['target_met_runs']} of {rep['runs']} fine-tune seeds)"
        lines.append([env, r.get("reality", ""),
                      *(cell(r, k) for k in ("stage1", "broad", "simopt", "oracle")),
                      _n(r.get("episodes")), r.get("mode", ""), verdict])  # fmt: skip
        if rep:
            m = rep["mean"]
            lines.append([f"{env}, mean of {rep['runs']} fine-tune seeds", r.get("reality", ""),
                          "", *(_pct(m[k]) for k in ("broad", "simopt", "oracle")),
                          _n(r.get("episodes")), r.get("mode", ""),
                          _n(rep.get("target_met_on_means"))])  # fmt: skip
    if not lines:
        return None
    head = ["env", "reality", "stage 1", "broad", "SimOpt-adapted", "oracle", "episodes",
            "budget", "adapted ≥ broad and ≤ 10 pts from oracle"]  # fmt: skip
    return _table(head, lines)


def inference() -> str | None:
    d = _load("inference")
    if not d:
        return None
    rows = []
    for name, r in d.get("results", {}).items():
        p = r.get("deploy_policy", {})
        rows.append(
            [
                name,
                _n(p.get("p50_ms"), 3),
                _n(p.get("p99_ms"), 3),
                _n(p.get("cpu_p99_ms"), 3),
                _n(r.get("target_p99_ms"), 0),
            ]
        )
    head = ["policy", "p50 ms", "p99 ms (wall)", "p99 ms (CPU)", "target p99 ms"]
    return "### Exported-policy latency, `simenvs.deploy` (`benchmarks/bench_inference.py`)\n\n" + (
        _table(head, rows)
    )


def gpu() -> str | None:
    d = _load("gpu")
    if not d or not isinstance(d.get("updates"), list):
        return None
    dev = d.get("device", {})
    where = f"{dev.get('gpu', '?')}, {dev.get('cpus', '?')} CPU cores, GL: {dev.get('gl_renderer')}"
    out = [f"### GPU machine (`benchmarks/gpu.py`)\n\n{_when(d)} — {where}"]
    rows = [
        [
            r["config"],
            r["policy"],
            r["device"],
            f"{r['samples_per_update']:,} × {r['n_epochs']}",
            _n(r["update_s"], 3),
            f"{r['speedup_vs_cpu']:.1f}×",
        ]
        for r in d["updates"]
    ]
    head = ["config", "policy", "device", "samples × epochs", "PPO update s", "vs CPU"]
    out.append(_table(head, rows))
    if isinstance(d.get("train"), list):
        rows = [
            [
                r["device"],
                _n(r["rl_steps"]),
                _n(r["wall_s_incl_pretrain_and_eval"], 0),
                _n(r["rl_steps_per_s"], 0),
                _pct(r["held_out_success"]) + f" of {r['held_out_episodes']}",
                _pct(r["deployed_onnx_success"]["success_rate"])
                + f" of {r['deployed_onnx_success']['episodes']}",
            ]
            for r in d["train"]
            if "deployed_onnx_success" in r
        ]
        head = ["DroneRace-v0 train", "RL steps", "wall s (BC+DAgger+PPO+eval)", "RL steps/s",
                "held-out success", "exported ONNX success"]  # fmt: skip
        out.append(_table(head, rows))
    if isinstance(d.get("render"), list):
        rows = [
            [r["env_id"], "×".join(map(str, r["image_size"])), _n(r["steps_per_s"], 0)]
            for r in d["render"]
        ]
        out.append(_table(["env (EGL on the GPU)", "image", "env steps/s (wall)"], rows))
    return "\n\n".join(out)


SECTIONS: list[Callable[[], str | None]] = [
    env_speed, throughput, training, transfer, inference, gpu, core,
]  # fmt: skip


def render() -> str:
    parts = [s for s in (f() for f in SECTIONS) if s]
    return "\n\n".join(parts) if parts else "*(no results yet: run the scripts in benchmarks/)*"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--print", action="store_true", help="print instead of editing README.md")
    args = p.parse_args()
    tables = render()
    if args.print:
        print(tables)
        return
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} / {END}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{tables}\n{END}{tail}")
    print(f"updated {readme}")


if __name__ == "__main__":
    main()
