"""RooftopLanding-v0 throughput and per-reset scene generation time, beside the raw physics.

Same rates as the gym-pybullet-drones reference figures in DESIGN.md (240 Hz physics, 48 Hz
control: 5 substeps per env step): 1,371 env steps/s with state obs and 157 with 64x48 RGB on
this machine kind.

Prints and writes benchmarks/results/rooftop_landing.json:
- raw ``mj_step`` substeps/s of the state-obs env's compiled model (quad + ~280 city geoms,
  sleeping on, no distractors) with the quad flying, as the env steps it (5 per call, the
  flying state restored every 48 calls: ``raw_mj_step_per_s``, the physics ceiling); the same
  with MuJoCo's collision stage off (what skipping collision detection could at most gain),
  with sleeping off (why it is on), with the six camera distractors that state mode leaves
  out, of the quad alone and of the quad resting on a roof (in contact);
- env steps/s with state obs (median of rounds), with the reset cost, the mean episode length
  of the benchmark policy and the rate without the resets' CPU time; then the 64x64 downward
  camera (rgb), state + depth + range grid and per-pixel labels; default randomization,
  episodes reset as they end;
- scene generation per reset: city generation, ground-truth safe map, writing the city into
  the compiled primitive pool (no recompilation), the whole ``env.reset``, and what compiling
  the scene would cost instead;
- the expert's success rate on a few seeds (the tests check 20);
- with ``--trained-run DIR``: the held-out success of a policy trained with the shipped config
  (``simenvs train simenvs/RooftopLanding-v0``), evaluated on seeds 1,000,000+; without it the
  previous file's figure is kept.

Rates are per second of this process's CPU time (one core; for camera modes this includes
llvmpipe's render threads), which other jobs on a shared 2-core machine disturb least;
wall-clock rates are written beside them. Compare numbers from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from _common import (  # noqa: E402
    expert_success,
    physics_rate,
    quad_env_rate,
    quad_env_rates,
    write,
)

import simenvs  # noqa: E402, F401
from simenvs.envs.rooftop_landing.city import generate_city  # noqa: E402
from simenvs.envs.rooftop_landing.env import RooftopLandingEnv  # noqa: E402
from simenvs.envs.rooftop_landing.safe_map import compute_safe_map  # noqa: E402
from simenvs.robots.quadrotor import add_quadrotor  # noqa: E402

PEER = {"state": 1371.0, "rgb_64x48": 157.0}
TARGET = {"state": 13_700.0, "rgb_64x64": 1_000.0, "scene_generation_ms": 20.0}


def raw_rate(m: mujoco.MjModel, d: mujoco.MjData, seconds: float) -> tuple[float, float]:
    """Substeps/s from the current state (restored every 48 control steps, see physics_rate)."""
    return physics_rate(m, d, seconds)


def resting_rate(env: RooftopLandingEnv, seconds: float) -> float:
    """Substeps/s of the quad resting on the best site (motors idle: in contact)."""
    s = env.site
    env.reset_quad([s.x, s.y, s.z + 0.1], thrust_fraction=0.0)
    env.data.ctrl[env.quad.cmd_ids] = 0.0
    mujoco.mj_step(env.model, env.data, 240)  # settle
    return raw_rate(env.model, env.data, seconds)[0]


def ms_per_call(fn, n: int) -> float:
    fn()
    c0 = time.process_time()
    for _ in range(n):
        fn()
    return 1e3 * (time.process_time() - c0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="timing window per figure")
    ap.add_argument("--rounds", type=int, default=3, help="state-obs rounds (median kept)")
    ap.add_argument("--resets", type=int, default=40, help="resets timed for scene generation")
    ap.add_argument("--expert-seeds", type=int, default=10)
    ap.add_argument("--trained-run", default=None, help="run folder of a trained policy")
    ap.add_argument("--trained-episodes", type=int, default=100)
    args = ap.parse_args()
    t = args.seconds

    env = RooftopLandingEnv(obs_mode="state")
    env.reset(seed=0)
    env.apply_action(env.hover_action())
    m, d = env.model, env.data
    raw, raw_wall = raw_rate(m, d, t)
    ceiling = raw / env.frame_skip
    off = int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
    m.opt.disableflags |= off
    raw_no_collision, _ = raw_rate(m, d, t)
    m.opt.disableflags &= ~off
    m.opt.enableflags &= ~int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    mujoco.mj_forward(m, d)
    raw_nosleep, _ = raw_rate(m, d, t)
    m.opt.enableflags |= int(mujoco.mjtEnableBit.mjENBL_SLEEP)
    mujoco.mj_forward(m, d)
    dist = RooftopLandingEnv(obs_mode="state", n_distractors=6)
    dist.reset(seed=0)
    dist.apply_action(dist.hover_action())
    raw_dist, _ = raw_rate(dist.model, dist.data, t)
    dist.close()
    spec = mujoco.MjSpec()
    add_quadrotor(spec, env.quad_params, pos=[0, 0, 1])
    mq = spec.compile()
    dq = mujoco.MjData(mq)
    raw_quad, _ = raw_rate(mq, dq, t)
    raw_rest = resting_rate(env, t)
    res: dict = {
        "timer": "process CPU time (one core); *_wall figures use wall-clock time",
        "physics_hz": 1.0 / env.model.opt.timestep,
        "control_hz": env.control_hz,
        "substeps": env.frame_skip,
        "ngeom": int(m.ngeom),
        "raw_mj_step_per_s": raw,
        "raw_mj_step_per_s_wall": raw_wall,
        "raw_mj_step_per_s_collision_off": raw_no_collision,
        "raw_mj_step_per_s_sleep_off": raw_nosleep,
        "raw_mj_step_per_s_with_6_distractors": raw_dist,
        "raw_mj_step_per_s_quad_alone": raw_quad,
        "raw_mj_step_per_s_resting_on_roof": raw_rest,
        "physics_ceiling_env_steps_per_s": ceiling,
    }
    print(
        f"raw mj_step: {raw:,.0f}/s flying (collision stage off: {raw_no_collision:,.0f}/s, "
        f"sleeping off: {raw_nosleep:,.0f}/s, with 6 distractors: {raw_dist:,.0f}/s, quad "
        f"alone {raw_quad:,.0f}/s, resting on a roof {raw_rest:,.0f}/s) -> physics-only "
        f"ceiling {ceiling:,.0f} env steps/s"
    )

    rounds = [quad_env_rates(env, t) for _ in range(args.rounds)]

    def med(field: str) -> float:
        return float(statistics.median(r[field] for r in rounds))

    res["rounds"] = args.rounds
    res["env_steps_per_s_state"] = med("cpu")
    res["env_steps_per_s_state_wall"] = med("wall")
    res["env_steps_per_s_state_rounds"] = [r["cpu"] for r in rounds]
    res["env_steps_per_s_state_steps_only"] = med("cpu_steps_only")
    res["state_reset_ms"] = med("reset_ms")
    res["state_episode_steps"] = med("episode_steps")
    res["state_fraction_of_ceiling"] = res["env_steps_per_s_state"] / ceiling
    res["state_steps_only_fraction_of_ceiling"] = res["env_steps_per_s_state_steps_only"] / ceiling
    if "simenvs/RooftopLanding-v0" in gym.registry:
        wrapped = gym.make("simenvs/RooftopLanding-v0")
        res["env_steps_per_s_state_gym_make"], _ = quad_env_rate(wrapped, t)
        wrapped.close()
    for key in ("env_steps_per_s_state", "env_steps_per_s_state_gym_make"):
        if key in res:
            print(
                f"{key}: {res[key]:,.0f} ({res[key] / PEER['state']:.1f}x gym-pybullet-drones, "
                f"target {TARGET['state']:,.0f})"
            )
    print(
        f"state obs without the resets' CPU ({res['state_reset_ms']:.1f} ms per "
        f"{res['state_episode_steps']:.0f}-step episode): "
        f"{res['env_steps_per_s_state_steps_only']:,.0f} steps/s "
        f"({res['state_steps_only_fraction_of_ceiling']:.0%} of the ceiling)"
    )
    for name, kw in (
        ("rgb_64x64", dict(obs_mode="rgb")),
        ("state_depth_range_64x64", dict(obs_mode="state_depth")),
        ("rgb_64x64_labels", dict(obs_mode="rgb", labels=True)),
    ):
        cam = RooftopLandingEnv(image_size=(64, 64), **kw)
        r, rw = quad_env_rate(cam, t)
        cam.close()
        res[f"env_steps_per_s_{name}"], res[f"env_steps_per_s_{name}_wall"] = r, rw
        print(f"env steps/s {name}: {r:,.0f} (wall {rw:,.0f})")
    res["rgb_vs_gym_pybullet_drones_64x48"] = res["env_steps_per_s_rgb_64x64"] / PEER["rgb_64x48"]

    # scene generation per reset
    n = args.resets
    cities = [generate_city(s) for s in range(n)]
    k = iter(range(10**9))
    gen = ms_per_call(lambda: generate_city(next(k) % n), n)
    k = iter(range(10**9))
    smap = ms_per_call(lambda: compute_safe_map(cities[next(k) % n]), n)
    pool = env._pool
    k = iter(range(10**9))
    apply = ms_per_call(
        lambda: (pool.apply(cities[next(k) % n], m), pool.flush_meshes(), env._pose_static()), n
    )  # with the material meshes (written lazily: state-only episodes skip them)
    k = iter(range(10**9))
    apply_state = ms_per_call(lambda: (pool.apply(cities[next(k) % n], m), env._pose_static()), n)
    k = iter(range(10**9))
    reset = ms_per_call(lambda: env.reset(seed=next(k)), n)
    compile_ms = ms_per_call(lambda: env.build_spec(env.streams.layout).compile(), 10)
    res |= {
        "city_generation_ms": gen,
        "safe_map_ms": smap,
        "pool_apply_ms": apply,
        "pool_apply_ms_state_obs": apply_state,
        "scene_generation_ms": gen + smap + apply,
        "env_reset_ms": reset,
        "scene_compile_ms_alternative": compile_ms,
        "safe_map_cells": int(np.prod(compute_safe_map(cities[0]).shape)),
    }
    print(
        f"scene per reset: city {gen:.2f} ms + safe map {smap:.2f} ms + pool {apply:.2f} ms = "
        f"{gen + smap + apply:.2f} ms (target {TARGET['scene_generation_ms']:.0f}); whole "
        f"reset {reset:.2f} ms; recompiling the scene instead would cost {compile_ms:.2f} ms "
        "plus a new render context"
    )
    env.close()
    res["peer_gym_pybullet_drones"] = PEER
    res["targets"] = TARGET

    if args.expert_seeds > 0:  # --expert-seeds 0: timings only
        t0 = time.perf_counter()
        success = expert_success(RooftopLandingEnv(), args.expert_seeds)
        res["expert_success_default_randomization"] = success
        res["expert_seeds"] = args.expert_seeds
        print(
            f"expert success: {res['expert_success_default_randomization']:.0%} of "
            f"{args.expert_seeds} seeds ({time.perf_counter() - t0:.1f} s)"
        )
    res["trained_policy"] = trained_policy(args.trained_run, args.trained_episodes)
    write("rooftop_landing", res)


def trained_policy(run: str | None, episodes: int) -> dict | None:
    """Held-out success of a trained run (or the previous result file's entry)."""
    if run is None:
        path = Path(__file__).parent / "results" / "rooftop_landing.json"
        old = json.loads(path.read_text()) if path.exists() else {}
        return old.get("trained_policy")
    from simenvs.agents.evaluate import evaluate_run
    from simenvs.agents.run_dir import read_json

    rep = evaluate_run(run, episodes=episodes, device="cpu", write=False)
    metrics = read_json(Path(run) / "metrics.json")
    out = {
        "config": "agents/configs/RooftopLanding-v0.yaml",
        "episodes": rep.episodes,
        "seeds": "1,000,000+",
        "success": rep.success_rate,
        "success_ci95": list(rep.success_ci95) if rep.success_ci95 else None,
        "failure_counts": rep.failure_counts,
        "rl_steps": metrics.get("num_timesteps"),
        "pretrain_env_steps": (metrics.get("pretrain") or {}).get("env_steps"),
        "wall_time_s": metrics.get("wall_time_s"),
    }
    print(f"trained policy: {rep.summary()}")
    return out


if __name__ == "__main__":
    main()
