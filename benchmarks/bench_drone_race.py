"""DroneRace-v0 throughput on one core, beside the raw physics rate of the same model.

Same rates as the gym-pybullet-drones reference figures in DESIGN.md (240 Hz physics, 48 Hz
control: 5 substeps per env step), so the numbers compare directly:
1,371 env steps/s with state obs and 157 with 64x48 RGB on this machine kind.

Prints and writes benchmarks/results/drone_race.json:
- raw ``mj_step`` substeps/s of the env's own compiled model (5 per call as the env steps
  them, the flying state restored every 48 calls), and the physics-only ceiling (that rate /
  substeps) an env step could reach with zero Python work;
- env steps/s with state obs (bare env and through ``gym.make`` wrappers) and with the
  64x64 FPV camera (rgb), default randomization, episodes reset as they end;
- the expert's lap completion on a few seeds (see tests for the full check).

Rates are per second of this process's CPU time (one core), which other jobs on a shared
2-core machine disturb least; wall-clock rates are written beside them. Compare numbers from
one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import gymnasium as gym  # noqa: E402
from _common import (  # noqa: E402
    expert_success,
    physics_rate,
    quad_env_rate,
    quad_env_rates,
    write,
)

import simenvs  # noqa: E402, F401
from simenvs.envs.drone_race.env import DroneRaceEnv  # noqa: E402

PEER = {"state": 1371.0, "rgb_64x48": 157.0}
TARGET = {"state": 13_700.0, "rgb_64x64": 1_000.0}


def raw_rate(env: DroneRaceEnv, seconds: float) -> tuple[float, float]:
    m, d = env.model, env.data
    env.reset(seed=0)
    env.apply_action(env.hover_action())
    return physics_rate(m, d, seconds)  # 5 substeps per call, as the env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.5, help="timing window per round")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (medians kept)")
    ap.add_argument("--expert-seeds", type=int, default=10)
    args = ap.parse_args()
    t = args.seconds

    env = DroneRaceEnv(obs_mode="state")
    raw, raw_wall = raw_rate(env, t)
    ceiling = raw / env.frame_skip
    res: dict = {
        "timer": "process CPU time (one core); *_wall figures use wall-clock time",
        "physics_hz": 1.0 / env.model.opt.timestep,
        "control_hz": env.control_hz,
        "substeps": env.frame_skip,
        "raw_mj_step_per_s": raw,
        "raw_mj_step_per_s_wall": raw_wall,
        "physics_ceiling_env_steps_per_s": ceiling,
    }
    print(f"raw mj_step: {raw:,.0f}/s -> physics-only ceiling {ceiling:,.0f} env steps/s")

    # Alternate the plain env, the gym.make-wrapped env and the camera env for several rounds
    # and keep medians: on a shared machine one window can be 20 % off.
    wrapped = gym.make("simenvs/DroneRace-v0")
    cam = DroneRaceEnv(obs_mode="rgb", image_size=(64, 64))
    rounds: dict[str, list[tuple[float, float]]] = {"state": [], "gym_make": [], "rgb": []}
    detail: list[dict] = []
    for _ in range(args.rounds):
        detail.append(quad_env_rates(env, t))
        rounds["state"].append((detail[-1]["cpu"], detail[-1]["wall"]))
        rounds["gym_make"].append(quad_env_rate(wrapped, t))
        rounds["rgb"].append(quad_env_rate(cam, t))
    for e in (env, wrapped, cam):
        e.close()

    def med(key: str, i: int) -> float:
        return float(statistics.median(r[i] for r in rounds[key]))

    res["rounds"] = args.rounds
    res["env_steps_per_s_state"], res["env_steps_per_s_state_wall"] = (
        med("state", 0),
        med("state", 1),
    )
    res["env_steps_per_s_state_rounds"] = [r[0] for r in rounds["state"]]
    res["state_fraction_of_ceiling"] = res["env_steps_per_s_state"] / ceiling
    res["env_steps_per_s_state_steps_only"] = float(
        statistics.median(r["cpu_steps_only"] for r in detail)
    )
    res["state_reset_ms"] = float(statistics.median(r["reset_ms"] for r in detail))
    res["state_episode_steps"] = float(statistics.median(r["episode_steps"] for r in detail))
    res["env_steps_per_s_state_gym_make"] = med("gym_make", 0)
    for key in ("env_steps_per_s_state", "env_steps_per_s_state_gym_make"):
        print(
            f"{key}: {res[key]:,.0f} ({res[key] / PEER['state']:.1f}x gym-pybullet-drones, "
            f"target {TARGET['state']:,.0f})"
        )
    rgb = med("rgb", 0)
    res["env_steps_per_s_rgb_64x64"], res["env_steps_per_s_rgb_64x64_wall"] = rgb, med("rgb", 1)
    res["env_steps_per_s_rgb_64x64_rounds"] = [r[0] for r in rounds["rgb"]]
    print(
        f"env steps/s rgb 64x64: {rgb:,.0f} ({rgb / PEER['rgb_64x48']:.1f}x gym-pybullet-drones "
        f"64x48, target {TARGET['rgb_64x64']:,.0f})"
    )
    res["peer_gym_pybullet_drones"] = PEER
    res["targets"] = TARGET

    t0 = time.perf_counter()
    success = expert_success(DroneRaceEnv(), args.expert_seeds)
    res["expert_lap_success_default_randomization"] = success
    res["expert_seeds"] = args.expert_seeds
    print(
        f"expert lap completion: {res['expert_lap_success_default_randomization']:.0%} of "
        f"{args.expert_seeds} seeds ({time.perf_counter() - t0:.1f} s)"
    )
    write("drone_race", res)


if __name__ == "__main__":
    main()
