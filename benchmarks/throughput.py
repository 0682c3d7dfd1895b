"""Env throughput: single / sync / async / batched x 1-2 workers x state / 64x64 RGB (issue 11).

For every env, in one run:

- limits of its compiled model: a Python loop of ``mj_step`` (one core; ``frame_skip`` substeps
  per env step) and a bare ``mujoco.batch.Batch`` of N sims stepping the same substeps on 1 and
  2 threads with no Python work (the physics limit of the batched env);
- ``single``: one env (``gym.make``) stepped in a loop, reset when done;
- ``sync`` / ``async``: Gymnasium ``SyncVectorEnv`` / ``AsyncVectorEnv`` with 1 and 2 envs
  (async: one worker process each);
- ``async-pool``: ``ProcessPoolVectorEnv``, the same M envs (``--pool-envs``) in 1 or 2 worker
  processes, one message per worker per step and shared-memory observations, so the pipe
  round trip is paid once per M/k env steps instead of once per env step;
- ``batched``: ``BatchedVectorEnv`` with N sims: the fast path (state obs, tasks with
  ``BatchOps``) on 1 and 2 batch threads; the generic path (the other tasks, image obs) steps
  each task's own data in one thread, so it has one row.

Reported: env steps/s, real-time factor (sim seconds per wall second) and per core, the
fraction of the matching physics limit, and episode ends per 1000 steps (resets cost a task's
``reset``, which no physics limit includes; the batched env first runs ``warmup`` steps so its
sims' episodes are out of phase). Single-threaded in-process configs also report CPU-time
rates, which other load on a shared machine distorts far less than wall time; process workers
report rates per CPU-second of all processes and of the busiest one (parent or a worker),
whose ratio x2/x1 is the scaling that one idle core per process would give.
The 1- and 2-worker configs of each process mode run as two envs alive together, timed in
alternating windows, and ``async_scaling`` gives the median (and quartiles) of the per-pair
ratios x2/x1 by wall clock and by busiest-process CPU time (the JSON's ``methods`` says how).
Every row records the 1-minute load average when it was measured. BLAS/OpenMP pools are
pinned to one thread per process. The policy is
the task's neutral action (hover for the quadrotors) plus N(0, 0.03) noise (``--noise``).
Timings take the best of several windows, so other load on the machine biases them less.
Writes benchmarks/results/throughput.json and benchmarks/results/throughput_scaling.png.

    python benchmarks/throughput.py [--quick] [--envs DroneRace,Grasp] [--batch-envs 64]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

# one BLAS/OpenMP thread per process (set before numpy loads; the forkserver that starts the
# async workers inherits it), so K workers use K cores and nothing oversubscribes them
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from _common import RESULTS, write  # noqa: E402
from mujoco import batch as mjb  # noqa: E402

import simenvs  # noqa: E402
from simenvs._registration import ENVS  # noqa: E402
from simenvs.vector.batched import BatchedVectorEnv, TaskFactory  # noqa: E402
from simenvs.vector.ops import find_ops  # noqa: E402
from simenvs.vector.pool import ProcessPoolVectorEnv  # noqa: E402

TOY = "simenvs.core.example:ToyPushEnv"
PLOT = RESULTS / "throughput_scaling.png"


def _short(env: str) -> str:
    return env.split("/")[-1].split("-v")[0] if "/" in env else env.rsplit(":", 1)[-1]


def _factory(env: str, kwargs: dict[str, Any]) -> TaskFactory:
    if env == TOY:
        from simenvs.core.example import ToyPushEnv

        return TaskFactory(ToyPushEnv, kwargs)
    return TaskFactory(env, kwargs)


def _obs_kwargs(obs: str) -> dict[str, Any]:
    return {"obs_mode": "state"} if obs == "state" else {"obs_mode": "rgb", "image_size": 64}


class Policy:
    """Neutral action + N(0, noise), pre-drawn so drawing costs nothing in the timed loop."""

    noise = 0.03

    def __init__(self, neutral: np.ndarray, low: np.ndarray, high: np.ndarray, n: int):
        rng = np.random.default_rng(0)
        base = np.broadcast_to(neutral, (n, *neutral.shape))
        self.acts = [
            np.clip(base + rng.normal(0.0, self.noise, base.shape), low, high).astype(np.float32)
            for _ in range(64)
        ]
        self.k = 0

    def __call__(self) -> np.ndarray:
        self.k = (self.k + 1) % len(self.acts)
        return self.acts[self.k]


RESETS = {"wall": 0.0, "cpu": 0.0}  # time spent in the batched env's task resets
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of process ``pid`` so far, from /proc (tick resolution)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK
    except (OSError, IndexError, ValueError):
        return 0.0


def _window(fn, n_envs: int, window_s: float, pids=()) -> dict[str, float]:
    """One timed window: wall rate, CPU-time rate, episode ends, env steps, CPU-time rate
    without the time spent in task resets; with worker ``pids``, the rates per CPU-second of
    all processes together and of the busiest one (what one core per process would give)."""
    r0 = RESETS["cpu"]
    w0 = [_proc_cpu(p) for p in pids]
    t0, c0, k, ends = time.perf_counter(), time.process_time(), 0, 0
    while True:
        ends += fn()
        k += 1
        dt = time.perf_counter() - t0
        if dt >= window_s and k >= 3:
            break
    dc = max(time.process_time() - c0, 1e-9)
    ex = max(dc - (RESETS["cpu"] - r0), 1e-9)
    steps = k * n_envs
    out = {"wall": steps / dt, "cpu": steps / dc, "ends": ends, "steps": steps, "ex": steps / ex}
    if pids:
        used = [max(_proc_cpu(p) - a, 0.0) for p, a in zip(pids, w0)]
        out["cpu_all"] = steps / (dc + sum(used))
        out["cpu_busiest"] = steps / max(dc, *used, 1e-9)
    return out


def best_rate(fn, n_envs: int, windows: int, window_s: float, warmup: int = 1, ref=None) -> dict:
    """Best env-steps/s over timed windows, by wall clock and by this process's CPU time
    (the CPU figure is what an idle machine would give a single-threaded, in-process config),
    and episode ends per 1000 env steps (``interleaved``: with worker pids, also the best rates
    per CPU-second of all processes and of the busiest process).

    With ``ref = (ref_fn, ref_n, scale)`` the reference (a physics limit) runs in windows that
    alternate with the measured ones, and the fraction of the limit is the median of the
    per-pair ratios: load that comes and goes on a shared machine hits both alike."""
    for _ in range(warmup):
        fn()
    return interleaved([(fn, n_envs, (), ref)], windows, window_s)[0]


def interleaved(cfgs: list[tuple], windows: int, window_s: float) -> list[dict]:
    """``best_rate`` of several configs ``(fn, n_envs, pids, ref)`` whose windows alternate
    (order reversed every round: ABBA...), so that load which comes and goes on a shared
    machine hits each config alike; each result also keeps its per-window rates
    (``windows``), for ratios between configs taken window pair by window pair."""
    raw: list[list[tuple[dict, dict | None]]] = [[] for _ in cfgs]
    for w in range(windows):
        order = list(range(len(cfgs)))
        for c in order if w % 2 == 0 else order[::-1]:
            fn, n_envs, pids, ref = cfgs[c]
            x = _window(fn, n_envs, window_s, pids)
            y = _window(ref[0], ref[1], window_s) if ref is not None else None
            raw[c].append((x, y))
    return [_summary(r, cfg[3]) for r, cfg in zip(raw, cfgs)]


def _summary(raw: list[tuple[dict, dict | None]], ref) -> dict:
    best: dict[str, float] = {}
    ends, steps = 0, 0
    rw, rc, ratios, ratios_cpu, ratios_ex = 0.0, 0.0, [], [], []
    for x, y in raw:
        for key in ("wall", "cpu", "cpu_all", "cpu_busiest"):
            if key in x:
                best[key] = max(best.get(key, 0.0), x[key])
        ends, steps = ends + x["ends"], steps + x["steps"]
        if y is not None:
            scale = ref[2]
            rw, rc = max(rw, y["wall"] * scale), max(rc, y["cpu"] * scale)
            ratios.append(x["wall"] / (y["wall"] * scale))
            ratios_cpu.append(x["cpu"] / (y["cpu"] * scale))
            ratios_ex.append(x["ex"] / (y["cpu"] * scale))
    out = {**best, "ends_per_1k": 1000.0 * ends / max(steps, 1), "windows": [x for x, _ in raw]}
    if ref is not None:
        out |= {
            "ref_wall": rw, "ref_cpu": rc,
            "frac": float(np.median(ratios)), "frac_cpu": float(np.median(ratios_cpu)),
            "frac_cpu_ex_resets": float(np.median(ratios_ex)),
        }  # fmt: skip
    return out


# ---- limits -------------------------------------------------------------------------------
def references(task: Any, n: int) -> dict[str, tuple]:
    """Physics-limit step functions of the task's model: a Python loop of ``mj_step`` (one env
    step = ``frame_skip`` substeps) and bare batches of n sims on 1 and 2 threads."""
    model, fs = task.model, task.frame_skip
    data = mujoco.MjData(model)
    mujoco.mj_copyData(data, model, task.data)

    def loop() -> int:
        for _ in range(fs):
            mujoco.mj_step(model, data)
        return 0

    refs: dict[str, tuple] = {"mj_step_loop": (loop, 1)}
    state = np.empty(mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_INTEGRATION))
    mujoco.mj_getState(model, task.data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    for t in (1, 2):
        try:
            b = mjb.Batch(model, n, t)
        except ValueError:  # sleeping bodies need a persistent batch
            b = mjb.Batch(model, n, t, persistent=True)
        b.state[:] = state

        def bare(b=b) -> int:
            b.step(nstep=fs)
            return 0

        refs[f"bare_batch_{t}"] = (bare, n)
    return refs


def limits(task: Any, refs: dict[str, tuple], windows: int, window_s: float) -> dict[str, float]:
    out = {}
    for name, (fn, n) in refs.items():
        r = best_rate(fn, n, windows, window_s)
        out[name], out[name + "_cpu"] = r["wall"], r["cpu"]
    t0 = time.process_time()
    for _ in range(10):
        task.reset()
    out["reset_ms_cpu"] = 1e3 * (time.process_time() - t0) / 10
    return out


# ---- modes --------------------------------------------------------------------------------
def run_single(env: str, kw: dict, windows: int, window_s: float, ref=None) -> dict:
    e = _factory(env, kw)()
    e.reset(seed=0)
    pol = Policy(e.neutral_action(), e.action_space.low, e.action_space.high, 1)

    def step() -> int:
        _, _, term, trunc, _ = e.step(pol()[0])
        if term or trunc:
            e.reset()
            return 1
        return 0

    try:
        return best_rate(step, 1, windows, window_s, ref=ref)
    finally:
        e.close()


def _prepare(venv: Any, warmup: int) -> tuple[Any, list[int]]:
    """Reset ``venv``, run ``warmup`` steps; its step function (returns episode ends) and
    worker pids."""
    if isinstance(venv, BatchedVectorEnv):  # account the time its tasks spend resetting
        inner = venv._reset_ids

        def timed(*a, inner=inner, **k):
            c0 = time.process_time()
            try:
                return inner(*a, **k)
            finally:
                RESETS["cpu"] += time.process_time() - c0

        venv._reset_ids = timed
    venv.reset(seed=0)
    neutral = np.asarray(venv.call("neutral_action")[0])
    space = venv.single_action_space
    pol = Policy(neutral, space.low, space.high, venv.num_envs)

    def step() -> int:
        _, _, term, trunc, _ = venv.step(pol())
        return int(np.count_nonzero(term) + np.count_nonzero(trunc))

    procs = getattr(venv, "processes", None) or []  # async workers: their CPU time too
    pids = [p.pid for p in procs if p.pid is not None]
    for _ in range(warmup):
        step()
    return step, pids


def run_vector(venv: Any, windows: int, window_s: float, warmup: int = 1, ref=None) -> dict:
    return run_pair([venv], windows, window_s, warmup, [ref])[0]


def run_pair(venvs: list[Any], windows: int, window_s: float, warmup: int, refs) -> list[dict]:
    """Vector envs alive together (e.g. 1 and 2 workers), measured in alternating windows
    (see ``interleaved``), so their ratio compares windows taken under the same load."""
    try:
        cfgs = []
        for venv, ref in zip(venvs, refs):
            step, pids = _prepare(venv, warmup)
            cfgs.append((step, venv.num_envs, pids, ref))
        return interleaved(cfgs, windows, window_s)
    finally:
        for venv in venvs:
            venv.close()


def _row(obs, dt, mode, workers, n_envs, r, cpu: bool) -> dict[str, Any]:
    """One result row; the limit and fraction come from the interleaved reference windows."""
    rate, rtf = r["wall"], r["wall"] * dt
    row = {
        "mode": mode, "workers": workers, "obs": obs, "num_envs": n_envs,
        "steps_per_s": rate, "rtf": rtf, "rtf_per_core": rtf / workers,
        "limit": r["ref_wall"], "frac_of_limit": r["frac"], "ends_per_1k": r["ends_per_1k"],
        "load_avg_1min": os.getloadavg()[0],
    }  # fmt: skip
    cpu_txt = ""
    if "cpu_busiest" in r:  # process workers: per CPU-second of all / of the busiest process
        row["steps_per_cpu_s_all"], row["steps_per_cpu_s_busiest"] = r["cpu_all"], r["cpu_busiest"]
        cpu_txt = f" | CPU-time {r['cpu_all']:9,.0f}/s all, {r['cpu_busiest']:9,.0f}/s busiest"
    if cpu:  # single-threaded, in-process: CPU-time figures too
        row["steps_per_cpu_s"], row["rtf_cpu"] = r["cpu"], r["cpu"] * dt
        row["cpu_limit"], row["frac_of_limit_cpu"] = r["ref_cpu"], r["frac_cpu"]
        cpu_txt = f" | CPU-time {r['cpu']:9,.0f}/s {100 * r['frac_cpu']:5.1f}%"
        if mode.startswith("batched"):
            row["frac_of_limit_cpu_ex_resets"] = r["frac_cpu_ex_resets"]
            cpu_txt += f" ({100 * r['frac_cpu_ex_resets']:5.1f}% w/o resets)"
    print(
        f"  {obs:5s} {mode:15s} x{workers} ({n_envs:3d} envs): {rate:9,.0f} steps/s "
        f"RTF {rtf:7,.0f} ({rtf / workers:6,.0f}/core) {100 * r['frac']:5.1f}% of "
        f"limit, ends/1k {r['ends_per_1k']:5.1f}, load {row['load_avg_1min']:.1f}{cpu_txt}"
    )
    return row


SCALING_METHOD = (
    "1 and 2 workers run as two vector envs alive at once, timed in alternating windows "
    "(order reversed every round), so each pair of adjacent windows saw the same load. Per "
    "pair: 2-worker/1-worker env steps/s by wall clock, by CPU time of the busiest process "
    "(parent or worker; the rate one idle core per process would give, unaffected by waiting "
    "for a core) and per CPU-second of all processes (efficiency, 1.0 = the second worker "
    "added no overhead). Reported: the median over pairs, its quartiles and every pair's "
    "value. CPU times of worker processes come from /proc (10 ms ticks)."
)


def _quartiles(xs: list[float]) -> dict[str, Any]:
    q1, med, q3 = (float(v) for v in np.percentile(xs, [25, 50, 75]))
    return {"median": med, "q25": q1, "q75": q3, "per_window": [float(v) for v in xs]}


def pair_scaling(one: dict, two: dict, n_envs: list[int]) -> dict[str, Any]:
    """2 workers / 1 worker from window pairs (``SCALING_METHOD``)."""
    pairs = list(zip(one["windows"], two["windows"]))
    wall = _quartiles([b["wall"] / a["wall"] for a, b in pairs])
    busy = _quartiles([b["cpu_busiest"] / a["cpu_busiest"] for a, b in pairs])
    eff = _quartiles([b["cpu_all"] / a["cpu_all"] for a, b in pairs])
    return {
        "wall_x2_over_x1": wall["median"], "cpu_busiest_x2_over_x1": busy["median"],
        "cpu_efficiency_x2_over_x1": eff["median"], "window_pairs": len(pairs),
        "wall": wall, "cpu_busiest": busy, "cpu_efficiency": eff, "num_envs": n_envs,
    }  # fmt: skip


def _print_scaling(obs: str, mode: str, x: dict[str, Any]) -> None:
    w, b = x["wall"], x["cpu_busiest"]
    print(
        f"  {obs:5s} {mode:10s} x2/x1 (median of {x['window_pairs']} window pairs): wall "
        f"{w['median']:.2f} [{w['q25']:.2f}-{w['q75']:.2f}], CPU-time (busiest process) "
        f"{b['median']:.2f} [{b['q25']:.2f}-{b['q75']:.2f}], efficiency "
        f"{x['cpu_efficiency_x2_over_x1']:.2f}"
    )


class _RobustInfos:
    """Gymnasium's vector envs fail on infos whose arrays change shape between episodes
    (RooftopLanding's per-episode maps); batch those into object arrays instead."""

    _add_info = BatchedVectorEnv._add_info


class SyncEnv(_RobustInfos, gym.vector.SyncVectorEnv):
    pass


class AsyncEnv(_RobustInfos, gym.vector.AsyncVectorEnv):
    pass


def measure_env(env: str, args: argparse.Namespace) -> dict[str, Any]:
    w, ws = args.windows, args.window_s
    probe = _factory(env, {"obs_mode": "state"})()
    probe.reset(seed=0)
    fast = find_ops(type(probe)) is not None
    dt = float(probe.dt)
    n_state = args.batch_envs if fast else args.batch_envs_generic
    refs = references(probe, n_state)
    res: dict[str, Any] = {
        "control_dt": dt,
        "physics_dt": float(probe.model.opt.timestep),
        "frame_skip": int(probe.frame_skip),
        "fast_path": fast,
        "limits": limits(probe, refs, w, ws),
        "results": [],
    }
    lim = res["limits"]
    print(
        f"{_short(env)}: mj_step loop {lim['mj_step_loop']:,.0f} env-steps/s; bare batch "
        f"{lim['bare_batch_1']:,.0f} (1 thread) / {lim['bare_batch_2']:,.0f} (2 threads); "
        f"reset {lim['reset_ms_cpu']:.2f} ms CPU"
    )
    loop = refs["mj_step_loop"]
    scaling: dict[str, Any] = {}
    for obs in args.obs:
        kw = _obs_kwargs(obs)
        rows: list[dict[str, Any]] = []
        r = run_single(env, kw, w, ws, ref=(*loop, 1.0))
        rows.append(_row(obs, dt, "single", 1, 1, r, cpu=True))
        for k in (1, 2):
            fns = [_factory(env, kw) for _ in range(k)]
            r = run_vector(SyncEnv(fns), w, ws, ref=(*loop, 1.0))
            rows.append(_row(obs, dt, "sync", k, k, r, cpu=k == 1))
        refs_k = [(*loop, 1.0), (*loop, 2.0)]  # k workers: k cores' worth of mj_step loop
        # forkserver: a forked child of a process holding a GL context can deadlock in EGL
        venvs = [AsyncEnv([_factory(env, kw) for _ in range(k)], context="forkserver")
                 for k in (1, 2)]  # fmt: skip
        pair = run_pair(venvs, args.pair_windows, ws, 1, refs_k)
        for k, r in zip((1, 2), pair):
            rows.append(_row(obs, dt, "async", k, k, r, cpu=False))
        scaling[f"{obs}/async"] = pair_scaling(*pair, [1, 2])
        m = args.pool_envs if obs == "state" else args.pool_envs_rgb
        # the same m envs in 1 or 2 worker processes
        venvs = [ProcessPoolVectorEnv(env, k, m // k, **kw) for k in (1, 2)]
        warm = max(1, args.warmup // 2) if obs == "state" else args.warmup // 10
        pair = run_pair(venvs, args.pair_windows, ws, warm, refs_k)
        for k, r in zip((1, 2), pair):
            rows.append(_row(obs, dt, "async-pool", k, m, r, cpu=False))
        scaling[f"{obs}/async-pool"] = pair_scaling(*pair, [m, m])
        for mode in ("async", "async-pool"):
            _print_scaling(obs, mode, scaling[f"{obs}/{mode}"])
        n = args.batch_envs_rgb if obs != "state" else n_state
        # the generic path steps each task's own data in one thread (simenvs.vector.physics)
        for t in (1, 2) if fast and obs == "state" else (1,):
            venv = BatchedVectorEnv(_factory(env, kw), n, nthread=t)
            path = "fast" if venv.ops is not None else "generic"
            warm = args.warmup if venv.ops is not None else args.warmup // 6
            r = run_vector(venv, w, ws, warm, ref=(*refs[f"bare_batch_{t}"], 1.0))
            rows.append(_row(obs, dt, f"batched-{path}", t, n, r, cpu=t == 1))
        res["results"] += rows
    res["async_scaling"] = scaling
    if fast and args.sizes:  # how the fast path's overhead amortizes over more sims
        print(f"  batch-size scaling (state, fast path): {args.sizes}")
        kw = _obs_kwargs("state")
        res["batch_size_scaling"] = []
        for n in args.sizes:
            refs_n = references(probe, n)
            for t in (1, 2):
                venv = BatchedVectorEnv(_factory(env, kw), n, nthread=t)
                r = run_vector(venv, w, ws, args.warmup, ref=(*refs_n[f"bare_batch_{t}"], 1.0))
                row = _row("state", dt, "batched-fast", t, n, r, cpu=t == 1)
                res["batch_size_scaling"].append(row)
    probe.close()
    return res


def plot(payload: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(payload["envs"])
    kinds = {r["obs"] for v in payload["envs"].values() for r in v["results"]}
    obs_kinds = [k for k in ("state", "rgb") if k in kinds]
    colors = {"single": "C2", "sync": "C3", "async": "C0", "async-pool": "C5",
              "batched-fast": "C1", "batched-generic": "C4"}  # fmt: skip
    fig, axes = plt.subplots(
        len(obs_kinds), len(envs), figsize=(4.2 * len(envs), 3.4 * len(obs_kinds)), squeeze=False
    )
    for c, name in enumerate(envs):
        v = payload["envs"][name]
        for r_i, obs in enumerate(obs_kinds):
            ax = axes[r_i][c]
            rows = [r for r in v["results"] if r["obs"] == obs]
            for mode in sorted({r["mode"] for r in rows}):
                pts = sorted((r["workers"], r["steps_per_s"]) for r in rows if r["mode"] == mode)
                n = max(r["num_envs"] for r in rows if r["mode"] == mode)
                label = f"{mode} ({n} sims)" if mode.startswith(("batched", "async-")) else mode
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label,
                        color=colors.get(mode))  # fmt: skip
            lim = v["limits"]
            ax.plot([1, 2], [lim["bare_batch_1"], lim["bare_batch_2"]], "k--", lw=1,
                    label="bare Batch (physics limit)")  # fmt: skip
            ax.axhline(lim["mj_step_loop"], color="gray", ls=":", lw=1, label="mj_step loop")
            ax.set_yscale("log")
            ax.set_xticks([1, 2])
            ax.set_xlabel("workers / batch threads")
            ax.set_title(f"{name} ({obs})")
            if c == 0:
                ax.set_ylabel("env steps / s")
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short windows, state obs + DroneRace")
    ap.add_argument("--plot-only", action="store_true", help="redraw the plot from the JSON")
    ap.add_argument("--envs", default=None, help="comma list of env names (DroneRace, ToyPush...)")
    ap.add_argument("--obs", default=None, help="comma list: state,rgb")
    ap.add_argument("--batch-envs", type=int, default=None, help="sims of the batched env")
    ap.add_argument("--batch-envs-rgb", type=int, default=16, help="sims, 64x64 RGB obs")
    ap.add_argument(
        "--batch-envs-generic", type=int, default=32, help="sims, tasks without a fast path"
    )
    ap.add_argument(
        "--pool-envs", type=int, default=16, help="envs of the async-pool rows (state obs)"
    )
    ap.add_argument("--pool-envs-rgb", type=int, default=4, help="envs of async-pool, RGB")
    ap.add_argument("--noise", type=float, default=0.03, help="policy noise std around neutral")
    ap.add_argument(
        "--sizes", default=None, help="extra batch sizes for the fast-path scaling, e.g. 64,256"
    )
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads((RESULTS / "throughput.json").read_text()), str(PLOT))
        return
    Policy.noise = args.noise
    names = {_short(i): i for i in ENVS} | {"ToyPush": TOY}
    if args.envs:
        unknown = [e for e in args.envs.split(",") if e not in names]
        if unknown:
            raise SystemExit(f"unknown env(s) {unknown}; choose from {sorted(names)}")
        chosen = [names[e] for e in args.envs.split(",")]
    else:
        chosen = [names["DroneRace"]] if args.quick else list(ENVS)
    args.obs = args.obs.split(",") if args.obs else (["state"] if args.quick else ["state", "rgb"])
    args.windows = 2 if args.quick else 4
    args.window_s = 0.3 if args.quick else 0.6
    args.pair_windows = 4 if args.quick else 8  # window pairs for the async x2/x1 ratios
    args.batch_envs = args.batch_envs or (64 if args.quick else 128)
    args.warmup = 20 if args.quick else 300  # batched: let episodes desynchronize first
    if args.sizes is None:
        args.sizes = "" if args.quick else "64,256"
    args.sizes = [int(x) for x in args.sizes.split(",") if x]
    payload: dict[str, Any] = {
        "quick": args.quick,
        "batch_envs": args.batch_envs,
        "batch_envs_rgb": args.batch_envs_rgb,
        "batch_envs_generic": args.batch_envs_generic,
        "cores_available": len(os.sched_getaffinity(0)),
        "load_avg_start": os.getloadavg()[0],
        "simenvs": simenvs.__version__,
        "policy_noise": args.noise,
        "methods": {
            "frac_of_limit": (
                "each measured window is followed by a window of the physics limit (a bare "
                "mujoco.batch.Batch of the same sims and threads for batched rows, a Python "
                "mj_step loop times the number of workers otherwise); the fraction is the "
                "median over window pairs; steps_per_s and limit are the best windows"
            ),
            "async_scaling": SCALING_METHOD,
        },
        "envs": {},
    }
    for env in chosen:
        payload["envs"][_short(env)] = measure_env(env, args)
    payload["load_avg_end"] = os.getloadavg()[0]
    write("throughput", payload)
    plot(payload, str(PLOT))


if __name__ == "__main__":
    main()
