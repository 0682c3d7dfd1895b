"""Run an exported policy at its control rate through a robot-driver interface.

A robot integration implements `RobotDriver` (read the latest observation in the policy's
input format, send a command in physical units, stop safely); `run_control_loop` does the
rest: fixed-rate scheduling, inference with `simenvs.deploy.Policy`, command checks, timing
figures, and a stop on any exit. `SimulatedRobot` is the stand-in reality used here: a
gymnasium env behind the same interface, converting the physical command back to the env's
normalized action exactly as a real driver converts it to motor/servo units.

    python -m simenvs.agents.hardware_loop EXPORT_DIR --seconds 5

The loop itself needs only numpy and onnxruntime; gymnasium is imported only by the stand-in.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simenvs.deploy import Policy

Observation = np.ndarray | dict[str, np.ndarray]


@runtime_checkable
class RobotDriver(Protocol):
    """What a robot's driver provides to the control loop."""

    def read_observation(self) -> Observation:
        """Latest observation, in the exported policy's input format (names, CHW images)."""
        ...

    def send_command(self, command: np.ndarray) -> None:
        """Apply a command in physical units (``policy.action_names`` / ``action_units``)."""
        ...

    def stop(self) -> None:
        """Bring the robot to a safe state; called once when the loop ends, also on errors."""
        ...


class SimulatedRobot:
    """Stand-in reality: a gymnasium env driven through the `RobotDriver` interface.

    Each command advances the env by one control step. Observations are converted to the
    policy's contract from the export metadata (HWC env images → CHW); commands are mapped
    from physical units back to the env's action (inverse of the exported action map). The env
    resets itself when an episode ends, as the world would carry on.
    """

    def __init__(self, env: Any, metadata: Mapping[str, Any], seed: int | None = None):
        self.env = env
        action = metadata["action"]
        self.scale = np.asarray(action["scale"], dtype=np.float64)
        self.offset = np.asarray(action["offset"], dtype=np.float64)
        self.env_low = np.asarray(action["env_low"], dtype=np.float64)
        self.env_high = np.asarray(action["env_high"], dtype=np.float64)
        self._hwc = {i["name"] for i in metadata["inputs"] if i.get("env_layout") == "HWC"}
        self._obs, _ = env.reset(seed=seed)
        self.steps = 0
        self.episodes = 0
        self.episode_return = 0.0
        self.returns: list[float] = []
        self.stopped = False

    def read_observation(self) -> Observation:
        obs = self._obs
        if isinstance(obs, Mapping):
            return {k: np.transpose(v, (2, 0, 1)) if k in self._hwc else v for k, v in obs.items()}
        return obs

    def send_command(self, command: np.ndarray) -> None:
        command = np.asarray(command, dtype=np.float64)
        if command.shape != self.scale.shape:
            raise ValueError(f"command shape {command.shape}, expected {self.scale.shape}")
        safe = np.where(self.scale == 0, 1.0, self.scale)
        env_action = np.where(self.scale == 0, 0.0, (command - self.offset) / safe)
        env_action = np.clip(env_action, self.env_low, self.env_high).astype(np.float32)
        self._obs, reward, terminated, truncated, _ = self.env.step(env_action)
        self.steps += 1
        self.episode_return += float(reward)
        if terminated or truncated:
            self.returns.append(self.episode_return)
            self.episodes += 1
            self.episode_return = 0.0
            self._obs, _ = self.env.reset()

    def stop(self) -> None:
        self.stopped = True


@dataclass
class LoopReport:
    """Timing of one control-loop run (milliseconds unless named otherwise)."""

    steps: int
    target_hz: float
    achieved_hz: float
    duration_s: float
    overruns: int  # steps whose read+infer+send outlasted the period
    step_p50_ms: float
    step_p99_ms: float
    period_jitter_p99_ms: float  # |actual period - target period|, 99th percentile
    policy_p50_ms: float
    policy_p99_ms: float


def _wait_until(deadline: float) -> None:
    # Sleep most of the way, then spin the last half millisecond: time.sleep alone
    # overshoots by the scheduler's granularity.
    remaining = deadline - time.perf_counter()
    if remaining > 0.0015:
        time.sleep(remaining - 0.001)
    while time.perf_counter() < deadline:
        pass


def run_control_loop(
    policy: Policy,
    driver: RobotDriver,
    *,
    steps: int | None = None,
    duration_s: float | None = None,
    rate_hz: float | None = None,
    realtime: bool = True,
    bound_tolerance: float = 1e-4,
) -> LoopReport:
    """Run read → infer → send at ``rate_hz`` (default: the export's control rate).

    Stops after ``steps`` or ``duration_s``. Every command is checked to be finite and within
    the exported physical bounds before it is sent; a violation stops the robot and raises.
    An overrun step is not caught up (no burst of late commands): the schedule restarts from it.
    """
    rate = float(rate_hz or policy.control_hz or 0.0)
    if rate <= 0:
        raise ValueError("no control rate: the export has none, pass rate_hz")
    if steps is None:
        if duration_s is None:
            raise ValueError("pass steps or duration_s")
        steps = max(1, round(duration_s * rate))
    period = 1.0 / rate
    span = (policy.action_high - policy.action_low).astype(np.float64)
    low = policy.action_low - bound_tolerance * np.maximum(span, 1.0)
    high = policy.action_high + bound_tolerance * np.maximum(span, 1.0)
    step_times = np.zeros(steps)
    infer_times = np.zeros(steps)
    ticks = np.zeros(steps)
    overruns = 0
    start = time.perf_counter()
    deadline = start
    try:
        for i in range(steps):
            tick = time.perf_counter()
            ticks[i] = tick
            obs = driver.read_observation()
            t_infer = time.perf_counter()
            command = policy(obs)
            infer_times[i] = time.perf_counter() - t_infer
            if not (
                np.isfinite(command).all() and (command >= low).all() and (command <= high).all()
            ):
                raise RuntimeError(
                    f"step {i}: command {command.tolist()} outside "
                    f"[{policy.action_low.tolist()}, {policy.action_high.tolist()}]"
                )
            driver.send_command(command)
            done = time.perf_counter()
            step_times[i] = done - tick
            deadline += period
            if done > deadline:
                overruns += 1
                deadline = done
            if realtime and i + 1 < steps:
                _wait_until(deadline)
    finally:
        driver.stop()
    duration = time.perf_counter() - start
    periods = np.diff(ticks)
    jitter = np.abs(periods - period) * 1e3 if periods.size else np.zeros(1)
    return LoopReport(
        steps=steps,
        target_hz=rate,
        achieved_hz=float((steps - 1) / (ticks[-1] - ticks[0])) if steps > 1 else float("nan"),
        duration_s=duration,
        overruns=overruns,
        step_p50_ms=float(np.percentile(step_times, 50) * 1e3),
        step_p99_ms=float(np.percentile(step_times, 99) * 1e3),
        period_jitter_p99_ms=float(np.percentile(jitter, 99)),
        policy_p50_ms=float(np.percentile(infer_times, 50) * 1e3),
        policy_p99_ms=float(np.percentile(infer_times, 99) * 1e3),
    )


def make_simulated_robot(
    policy: Policy, env_id: str | None = None, seed: int = 0
) -> SimulatedRobot:
    """Build the stand-in reality from the env recorded in the export metadata."""
    import gymnasium as gym

    env_id = env_id or policy.env_id
    if not env_id:
        raise ValueError("the export records no env id: pass env_id")
    if env_id.startswith("simenvs/") and env_id not in gym.registry:
        import simenvs  # noqa: F401  (registers the simenvs ids)
    env = gym.make(env_id, **(policy.metadata.get("env_kwargs") or {}))
    return SimulatedRobot(env, policy.metadata, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export_dir", help="directory written by `simenvs export`")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=None, help="Hz (default: export's rate)")
    parser.add_argument("--env-id", default=None, help="stand-in env (default: export's env)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-realtime", action="store_true", help="run as fast as possible")
    args = parser.parse_args(argv)

    policy = Policy.load(args.export_dir)
    robot = make_simulated_robot(policy, args.env_id, args.seed)
    try:
        report = run_control_loop(
            policy,
            robot,
            duration_s=args.seconds,
            rate_hz=args.rate,
            realtime=not args.no_realtime,
        )
    finally:
        robot.env.close()
    print(
        json.dumps(
            {**asdict(report), "episodes": robot.episodes, "returns": robot.returns}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
