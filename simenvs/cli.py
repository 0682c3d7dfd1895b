"""The ``simenvs`` command: one sub-command per job, each implemented in its own module.

Parsers live here so ``simenvs --help`` is complete; the work is imported lazily so the
command starts fast and each job pulls in only what it needs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["main", "build_parser"]


def _env_kwargs(pairs: list[str] | None) -> dict:
    """``key=value`` pairs; values parsed as YAML scalars (numbers, bools, strings)."""
    import yaml

    out = {}
    for item in pairs or []:
        if "=" not in item:
            raise SystemExit(f"--env-kwarg expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def cmd_list(args: argparse.Namespace) -> int:
    import gymnasium as gym

    import simenvs  # noqa: F401  (registers)
    from simenvs._registration import ENVS

    for env_id in ENVS:
        env = gym.make(env_id)
        base = env.unwrapped
        print(f"{env_id}")
        print(f"  observation ({base.obs_mode}): {env.observation_space}")
        print(f"  action: {env.action_space}")
        print(f"  control: {base.control_hz:g} Hz, {base.max_episode_steps} steps/episode")
        groups: dict[str, int] = {}
        for p in base.registry:
            groups[p.group] = groups.get(p.group, 0) + 1
        print("  parameters: " + ", ".join(f"{g} {n}" for g, n in groups.items()))
        if args.verbose:
            for name in sorted(base.randomization_summary()):
                print(f"    {name}")
        env.close()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    import simenvs  # noqa: F401
    from simenvs.viz import contact_sheet

    try:
        rows, cols = (int(x) for x in args.grid.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--grid must look like 4x4, got {args.grid!r}") from None
    kwargs = _env_kwargs(args.env_kwarg)
    kwargs["randomization"] = args.randomization
    out = contact_sheet(
        args.env_id, args.out, rows, cols, args.seed, args.size, args.camera, kwargs
    )
    print(f"wrote {out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Random-policy rollouts of every env: throughput, a contact sheet and a video each."""
    import gymnasium as gym
    import numpy as np

    import simenvs  # noqa: F401
    from simenvs._registration import ENVS
    from simenvs.viz import contact_sheet, write_video

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ids = args.env_ids or list(ENVS)
    for env_id in ids:
        env = gym.make(env_id)
        env.reset(seed=0)
        env.action_space.seed(0)
        n, t0 = 0, time.perf_counter()
        while n < args.steps:
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            n += 1
            if term or trunc:
                env.reset()
        rate = n / (time.perf_counter() - t0)
        sim_rate = rate * env.unwrapped.dt
        env.close()
        print(f"{env_id}: {rate:,.0f} env steps/s (state obs) = {sim_rate:,.0f}x real time")
        name = env_id.split("/")[-1]
        sheet = contact_sheet(env_id, out / f"{name}_randomization.png", 4, 4, size=128)
        env = gym.make(env_id, render_mode="rgb_array", width=320, height=240)
        env.reset(seed=1)
        frames = [env.render()]
        for _ in range(args.video_steps):
            _, _, term, trunc, _ = env.step(env.action_space.sample())
            frames.append(env.render())
            if term or trunc:
                break
        video = write_video(
            frames, out / f"{name}_random_policy.mp4", env.unwrapped.metadata["render_fps"]
        )
        env.close()
        print(f"  wrote {sheet} and {video}")
    del np
    return 0


def _lazy(path: str):
    """A handler imported on call, so ``simenvs --help`` does not load torch."""

    def run(args: argparse.Namespace) -> int:
        import importlib

        module, _, name = path.partition(":")
        return getattr(importlib.import_module(module), name)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="simenvs", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list env ids with their spaces and randomized parameters")
    s.add_argument("-v", "--verbose", action="store_true", help="list every randomized parameter")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("show", help="render a grid of randomized resets into one image")
    s.add_argument("env_id")
    s.add_argument("--grid", default="4x4")
    s.add_argument("--out", default="sheet.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=160, help="pixels per tile")
    s.add_argument("--camera", default=None)
    s.add_argument("--randomization", default="default", help="none|default|wide|FILE.yaml")
    s.add_argument("--env-kwarg", action="append", metavar="KEY=VALUE")
    s.set_defaults(func=cmd_show)

    s = sub.add_parser("demo", help="random-policy rollouts: throughput, contact sheets, videos")
    s.add_argument("env_ids", nargs="*")
    s.add_argument("--steps", type=int, default=2000)
    s.add_argument("--video-steps", type=int, default=100)
    s.add_argument("--out", default="runs/demo")
    s.set_defaults(func=cmd_demo)
    from simenvs.agents.cli_args import add_eval_arguments, add_train_arguments

    s = sub.add_parser("train", help="train an SB3 policy into a run folder (resumable)")
    add_train_arguments(s)
    s.set_defaults(func=_lazy("simenvs.agents.train:train_command"))

    s = sub.add_parser("eval", help="evaluate a run: success with a 95%% CI, failure modes, video")
    add_eval_arguments(s)
    s.set_defaults(func=_lazy("simenvs.agents.evaluate:eval_command"))

    from simenvs.export import cli as export_cli

    s = sub.add_parser("export", help="export a trained policy (ONNX/TorchScript) for hardware")
    export_cli.add_arguments(s)
    s.set_defaults(func=export_cli.run)

    from simenvs.pipeline import add_pipeline_arguments

    s = sub.add_parser(
        "pipeline",
        help="the sim-to-real loop: train, real rollouts, SimOpt, fine-tune, export, report",
    )
    add_pipeline_arguments(s)
    s.set_defaults(func=_lazy("simenvs.pipeline:cmd_pipeline"))

    from simenvs.simopt.cli import add_simopt_arguments, cmd_simopt

    s = sub.add_parser("simopt", help="adapt the dynamics randomization to real rollouts (SimOpt)")
    add_simopt_arguments(s)
    s.set_defaults(func=cmd_simopt)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
