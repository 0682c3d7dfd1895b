"""The pipeline's report: ``RUN_DIR/report.md`` (+ ``report.html``) and its pictures.

Pictures go to ``RUN_DIR/report/``: the learning curve (success of every BC/DAgger round of
the first training and of both fine-tunes), a contact sheet of the training randomization, the
success before/after adaptation with 95 % confidence intervals, and a video of the adapted
policy flying in the stand-in reality. SimOpt's own convergence plot stays in
``RUN_DIR/simopt/``. Everything is read back from ``pipeline.json`` and the run folders, so
the report can be rebuilt from a finished run alone.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_report", "plot_learning_curve", "plot_success", "record_video"]

_COLORS = {
    "sim": "#7f7f7f",
    "before": "#d62728",
    "after": "#2ca02c",
    "control": "#ff7f0e",
    "expert": "#1f77b4",
}
_LABELS = {
    "sim": "sim, training prior\n(broad policy)",
    "before": "reality: before\n(broad policy)",
    "after": "reality: after\n(SimOpt fine-tune)",
    "control": "reality: control\n(fine-tune on prior)",
    "expert": "reality: scripted\nexpert (privileged)",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _rounds(run_dir: Path) -> list[dict[str, Any]]:
    p = run_dir / "metrics.json"
    if not p.exists():
        return []
    m = json.loads(p.read_text())
    return list((m.get("pretrain") or {}).get("rounds") or [])


def plot_learning_curve(runs: dict[str, Path], path: Path) -> Path:
    """Success (training distribution of each run) after every BC/DAgger round, the
    fine-tunes continuing from the end of the first training; cumulative samples below."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(7.5, 5.5), sharex=True, gridspec_kw={"height_ratios": [2, 1]}
    )
    start = 0
    base = _rounds(runs["stage 1 (training prior)"])
    styles = {
        "stage 1 (training prior)": ("k", "o"),
        "fine-tune: SimOpt-adapted": ("#2ca02c", "s"),
        "fine-tune: control (prior)": ("#ff7f0e", "^"),
    }
    for label, run_dir in runs.items():
        rounds = base if label.startswith("stage 1") else _rounds(run_dir)
        if not rounds:
            continue
        x0 = 0 if label.startswith("stage 1") else start
        xs = np.arange(len(rounds)) + x0
        ys = [np.nan if r.get("success") is None else 100 * r["success"] for r in rounds]
        color, marker = styles.get(label, ("b", "."))
        ax.plot(xs, ys, marker=marker, color=color, label=label)
        ax2.plot(xs, [r.get("samples", np.nan) for r in rounds], marker=marker, color=color)
        if label.startswith("stage 1"):
            start = len(rounds)
    ax.set_ylabel("episodes successful (%)")
    ax.set_ylim(-5, 105)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(
        "learning curve: round 0 = behaviour cloning, then DAgger rounds\n"
        "(success in each run's own training distribution)",
        fontsize=10,
    )
    ax2.set_ylabel("samples")
    ax2.set_xlabel("BC / DAgger round")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_success(results: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Bar chart of success rates with their Wilson 95 % intervals."""
    plt = _plt()
    tags = [t for t in ("sim", "before", "after", "control", "expert") if t in results]
    fig, ax = plt.subplots(figsize=(1.7 * len(tags) + 1.5, 4.2))
    rates = np.array([100 * results[t]["success_rate"] for t in tags])
    lo = np.array([100 * results[t]["ci95"][0] for t in tags])
    hi = np.array([100 * results[t]["ci95"][1] for t in tags])
    xs = np.arange(len(tags))
    ax.bar(xs, rates, color=[_COLORS[t] for t in tags], alpha=0.85)
    ax.errorbar(xs, rates, yerr=[rates - lo, hi - rates], fmt="none", ecolor="k", capsize=5)
    for x, t, r in zip(xs, tags, rates):
        n = results[t]["episodes"]
        ax.text(
            x + 0.08,
            max(r / 2, 2),
            f"{r:.0f}%\nn={n}",
            ha="left",
            va="center",
            fontsize=8,
            color="white" if r > 12 else "black",
            fontweight="bold",
        )
    ax.set_xticks(xs, [_LABELS[t] for t in tags], fontsize=8)
    ax.set_ylabel("success (%) with 95 % CI")
    ax.set_ylim(0, 115)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def record_video(ctx: Any, path: Path) -> tuple[Path, dict[str, Any]]:
    """The adapted policy in the stand-in reality (its renderer), every other control step."""
    from simenvs.simopt.env_params import expand_params
    from simenvs.viz import write_video

    from .pipeline import VIDEO_SEED, _policy

    w, h = ctx.budget["video_size"]
    real = ctx.reality("video", render_mode="rgb_array", width=int(w), height=int(h))
    env = real.env
    fixed = {"params": expand_params(real.truth, env=env)} if real.truth else None
    policy = _policy(ctx.adapted_dir)(env)
    frames: list[np.ndarray] = []
    limit = int(ctx.budget["video_frames"])
    outcomes = []
    obs, _ = env.reset(seed=VIDEO_SEED, options=fixed)  # one episode, up to ``limit`` frames
    policy.reset()
    done, t, info = False, 0, {}
    frames.append(env.render())
    while not done and len(frames) < limit:
        obs, _, term, trunc, info = env.step(policy.act(obs))
        done = term or trunc
        t += 1
        if t % 2 == 0 or done:
            frames.append(env.render())
    outcomes.append(bool(info.get("is_success", False)) if done else None)
    fps = float(getattr(env.unwrapped, "control_hz", 48.0)) / 2
    out = write_video(frames, path, fps)
    return out, {"frames": len(frames), "steps": t, "success": outcomes[0], "reality": real.name}


def _fmt(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    rate = 100 * r["success_rate"]
    return f"{r['successes']}/{r['episodes']} = **{rate:.0f} %** [{100 * lo:.0f}, {100 * hi:.0f}]"


def _markdown(ctx: Any, res: dict[str, Any], media: dict[str, str], seconds: dict) -> str:
    st = ctx.state
    cfg = st.data["config"]
    ev = st.result("eval_real")
    so = st.result("simopt")
    sim = st.result("eval_sim")["policy"]
    ex = st.result("export")
    hw = st.result("hardware")
    col = st.result("collect")
    b = ctx.budget
    L: list[str] = []
    L.append(f"# simenvs pipeline report: {cfg['env_id']}\n")
    L.append(
        f"Budget **{cfg['budget']}**, stand-in reality **{cfg['real']}**, seed {cfg['seed']}. "
        f"Task variant: `{json.dumps(ctx.recipe.env_kwargs)}` ({ctx.recipe.note}); training "
        f"randomization: the env's `{ctx.recipe.train_randomization}` preset.\n"
    )
    after, before = ev["after"], ev["before"]
    gain = 100 * (after["success_rate"] - before["success_rate"])
    sep = after["ci95"][0] > before["ci95"][1]
    L.append("## Result\n")
    L.append(f"![success before and after adaptation]({media['success']})\n")
    L.append("| policy | where | success (95 % CI) |\n|---|---|---|")
    L.append(f"| broad (stage 1) | simulation, training prior | {_fmt(sim)} |")
    L.append(f"| broad (stage 1) | {ev['reality']} | {_fmt(before)} |")
    L.append(f"| SimOpt-adapted fine-tune | {ev['reality']} | {_fmt(after)} |")
    if "control" in ev:
        L.append(
            f"| control: same fine-tune on the prior | {ev['reality']} | {_fmt(ev['control'])} |"
        )
    L.append(f"| scripted expert (privileged) | {ev['reality']} | {_fmt(ev['expert'])} |\n")
    if gain > 0 and sep:
        verdict = "the intervals do not overlap"
    elif gain > 0:
        verdict = "the intervals overlap: more evaluation episodes (--budget full) would settle it"
    else:
        verdict = "no improvement in this run"
    text = (
        f"Adaptation changed success in the stand-in reality by **{gain:+.0f} points** ({verdict})."
    )
    if "control" in ev:
        c = ev["control"]
        d = 100 * (after["success_rate"] - c["success_rate"])
        if d > 0 and after["ci95"][0] > c["ci95"][1]:
            tail = (
                f"the adapted fine-tune beats it by **{d:.0f} points** and the intervals do not "
                "overlap: the gain comes from the adapted distribution, not from extra training."
            )
        elif d > 0:
            tail = (
                f"the adapted fine-tune is ahead by **{d:.0f} points**, but the intervals "
                "overlap: suggestive, not conclusive, at this episode count."
            )
        else:
            tail = "extra training alone did as well here: no gain due to adaptation in this run."
        text += (
            f" The control, fine-tuned with the same budget on the original prior, reached "
            f"{100 * c['success_rate']:.0f} %; {tail}"
        )
    text += (
        f" All evaluations use the same {before['episodes']} held-out episode seeds "
        f"({ev['seed']}+).\n"
    )
    L.append(text)
    L.append("## SimOpt: adapted dynamics\n")
    L.append(f"![SimOpt parameter convergence]({so['plot']})\n")
    L.append(
        f"{col['episodes']} rollouts of the broad policy were recorded in {col['reality']} "
        f"({col['steps']} steps, files `{'`, `'.join(col['files'])}`); SimOpt (REPS, "
        f"{b['iterations']} iterations x {b['updates']} updates x {b['samples']} samples) fitted "
        f"a Gaussian over {len(ctx.recipe.params)} parameters from a broad prior (moments of the "
        f"`{ctx.recipe.prior_preset}` preset) by closed-loop simulation of the same policy.\n"
    )
    L.append("| parameter | prior mean +- std | adapted mean +- std | truth (sim terms) |")
    L.append("|---|---|---|---|")
    truth = so.get("truth") or {}
    for n in so["mean"]:
        t = truth.get(n)
        L.append(
            f"| `{n}` | {so['prior_mean'][n]:.4g} +- {so['prior_std'][n]:.2g} | "
            f"{so['mean'][n]:.4g} +- {so['std'][n]:.2g} | "
            + ("-" if t is None else f"{t:.4g}")
            + " |"
        )
    if truth:
        L.append(
            "\nThe truth column is the hidden airframe expressed in the simulator's parameters "
            "(for PyBullet: thrust-to-weight as an effective thrust scale, drag per nominal "
            "mass); it is never used for fitting.\n"
        )
    disc = so.get("discrepancy") or []
    if disc:
        L.append(
            "Discrepancy of the mean per iteration (before -> after): "
            + ", ".join(f"{a:.3g} -> {c:.3g}" for a, c in disc)
            + ".\n"
        )
    L.append("## Training\n")
    L.append(f"![learning curve]({media['learning_curve']})\n")
    bc, ft = ctx.pretrain()
    L.append(
        f"Stage 1: behaviour cloning from {bc['episodes']} scripted-expert episodes, "
        f"{bc['dagger_iters']} DAgger rounds of {bc['dagger_episodes']} episodes, then "
        f"{b['rl_steps']} PPO steps on {b['n_envs']} `{b['vec']}` workers "
        f"(`{ctx.state.result('train')['run_dir']}/`). Fine-tunes: warm start (weights and "
        f"observation statistics), {ft['episodes']} expert episodes, {ft['dagger_iters']} DAgger "
        f"rounds and "
        f"{b['ft_rl_steps']} PPO steps on the adapted distribution "
        f"(`{ctx.state.result('finetune')['run_dir']}/`)"
        + (
            f" and, identically, on the prior (`{ctx.state.result('control')['run_dir']}/`)"
            if "control" in ev
            else ""
        )
        + ".\n"
    )
    L.append(f"Training randomization (resets of `{cfg['env_id']}`):\n")
    L.append(f"![randomization contact sheet]({media['randomization']})\n")
    L.append("## The adapted policy\n")
    vid = media["video"]
    v = res["video"]
    outcome = {True: "successful", False: "failed", None: "cut at the frame limit"}[v["success"]]
    L.append(
        f"Video of one episode in {v['reality']}: [{vid}]({vid}) ({v['steps']} control "
        f"steps, every other one drawn; episode {outcome}).\n"
    )
    L.append("## Export and hardware loop\n")
    L.append(
        f"Exported to `{ex['dir']}/`: "
        + ", ".join(f"{k} `{v}`" for k, v in ex["files"].items())
        + f"; metadata (observation/action layout, control rate, normalization, randomization "
        f"summary, checksums) in `{ex['metadata']}`. Inputs {ex['inputs']}, actions "
        f"{ex['action']} at {ex['control_hz']} Hz. Largest difference from SB3 `predict` "
        f"(physical units): {ex['max_abs_error']}.\n"
    )
    L.append(
        f"Load it on a robot with `simenvs.deploy.Policy.load('{ex['dir']}')` (numpy + "
        f"onnxruntime only). Hardware-loop run (`simenvs.agents.hardware_loop`) against "
        f"{hw['reality']}: {hw['steps']} steps at {hw['achieved_hz']:.1f} Hz (target "
        f"{hw['target_hz']:g} Hz), {hw['overruns']} overruns, step p99 "
        f"{hw['step_p99_ms']:.2f} ms, policy p99 {hw['policy_p99_ms']:.2f} ms; "
        f"{hw['episodes_finished']} episode(s) finished, {hw['successes']} successful.\n"
    )
    L.append("## Timings\n")
    L.append("| stage | seconds |\n|---|---|")
    for name, secs in seconds.items():
        L.append(f"| {name} | {secs:.1f} |")
    L.append(f"| **total** | **{sum(seconds.values()):.1f}** |\n")
    L.append(
        "Rerun the same `simenvs pipeline` command to continue a stopped run; stage results are "
        "in `pipeline.json`.\n"
    )
    return "\n".join(L)


def _html(md_text: str) -> str:
    """A small HTML rendering of the report: headings, paragraphs, images, tables, links."""
    import re

    def inline(text: str) -> str:
        text = html.escape(text)
        text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
        text = re.sub(r"`(.+?)`", r"<code>\1</code>", text)
        return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', text)

    body: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *rows = [r for r in table if not set("".join(r)) <= set("-: ")]
            body.append("<table border='1' cellpadding='4' style='border-collapse:collapse'>")
            body.append("<tr>" + "".join(f"<th>{inline(c)}</th>" for c in head) + "</tr>")
            for r in rows:
                body.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>")
            body.append("</table>")
            table.clear()

    for line in md_text.splitlines():
        s = line.strip()
        if s.startswith("|"):
            table.append([c.strip() for c in s.strip("|").split("|")])
            continue
        flush()
        img = re.fullmatch(r"!\[(.*)\]\((.*)\)", s)
        if img:
            body.append(
                f'<p><img alt="{html.escape(img[1])}" src="{html.escape(img[2])}" '
                'style="max-width:100%"></p>'
            )
        elif s.startswith("# "):
            body.append(f"<h1>{inline(s[2:])}</h1>")
        elif s.startswith("## "):
            body.append(f"<h2>{inline(s[3:])}</h2>")
        elif s:
            body.append(f"<p>{inline(s)}</p>")
    flush()
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>simenvs pipeline report"
        "</title></head><body style='font-family:sans-serif;max-width:60em;margin:auto'>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def write_report(ctx: Any) -> dict[str, Any]:
    """Pictures + ``report.md`` + ``report.html`` for a pipeline whose other stages are done."""
    import time

    from simenvs.viz import contact_sheet

    t0 = time.perf_counter()
    media_dir = ctx.media_dir
    if media_dir.exists():
        shutil.rmtree(media_dir)
    media_dir.mkdir(parents=True)
    st = ctx.state
    runs = {"stage 1 (training prior)": ctx.train_dir, "fine-tune: SimOpt-adapted": ctx.adapted_dir}
    if ctx.control:
        runs["fine-tune: control (prior)"] = ctx.control_dir
    lc = plot_learning_curve(runs, media_dir / "learning_curve.png")
    ctx.log(f"learning curve: {lc}")
    spec = json.loads((ctx.train_dir / "config.json").read_text())["randomization"]
    rows, cols, size = ctx.budget["sheet"]
    kw = {k: v for k, v in ctx.env_kwargs().items() if k != "max_episode_steps"}
    sheet = contact_sheet(
        ctx.env_id,
        media_dir / "randomization.png",
        int(rows),
        int(cols),
        seed=0,
        size=int(size),
        env_kwargs={**kw, "randomization": spec},
    )
    ctx.log(f"randomization contact sheet: {sheet}")
    results = {
        "sim": st.result("eval_sim")["policy"],
        **{k: v for k, v in st.result("eval_real").items() if isinstance(v, dict)},
    }
    bars = plot_success(
        results,
        media_dir / "success.png",
        f"{ctx.env_id}: success in {st.result('eval_real')['reality']}",
    )
    ctx.log(f"success chart: {bars}")
    video, vinfo = record_video(ctx, media_dir / "final_policy.mp4")
    ctx.log(f"video of the adapted policy: {video} ({vinfo['frames']} frames)")
    from .pipeline import _rel

    media = {
        "learning_curve": _rel(ctx, lc),
        "randomization": _rel(ctx, sheet),
        "success": _rel(ctx, bars),
        "video": _rel(ctx, video),
    }
    res = {"video": vinfo}
    seconds = {k: v for k, v in st.seconds().items() if k != "report"}
    seconds["report"] = time.perf_counter() - t0
    text = _markdown(ctx, res, media, seconds)
    md = ctx.root / "report.md"
    md.write_text(text)
    (ctx.root / "report.html").write_text(_html(text))
    ctx.log(f"wrote {md} and report.html")
    return {"report": "report.md", "html": "report.html", "media": media, "video": vinfo}
