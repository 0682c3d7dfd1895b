"""Argument parsers of ``simenvs train`` and ``simenvs eval``, importing nothing heavy.

``simenvs/cli.py`` builds its sub-commands from these so ``simenvs --help`` stays fast; the
handlers (``simenvs.agents.train.train_command``, ``simenvs.agents.evaluate.eval_command``)
import Stable-Baselines3 and torch only when a command runs.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_train_arguments", "add_eval_arguments"]

ALGOS = ("ppo", "sac")


def _steps(text: str) -> int:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--steps expects a number like 200000 or 2e5, got {text!r}"
        ) from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"--steps must be >= 1, got {text!r}")
    return int(v)


def add_train_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``simenvs train`` (use with a subparser or a plain parser)."""
    parser.add_argument(
        "env_id",
        nargs="?",
        default=None,
        help="Gymnasium id, e.g. simenvs/RooftopLanding-v0 (optional with --resume or --config)",
    )
    parser.add_argument("--algo", choices=ALGOS, default=None, help="default: the config's")
    parser.add_argument("--steps", type=_steps, default=None, help="total env steps, e.g. 1e6")
    parser.add_argument("--n-envs", type=int, default=None, help="parallel envs")
    parser.add_argument(
        "--vec",
        choices=["batched", "async", "sync"],
        default=None,
        help="vector env: native batched, subprocesses or in-process",
    )
    parser.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default=None,
        help="auto: CUDA when available, else CPU",
    )
    parser.add_argument(
        "--config", default=None, help="config YAML file or shipped name (default: the env's own)"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--out", default=None, help="run folder (default runs/<env>-<algo>-s<seed>)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    parser.add_argument(
        "--randomization", default=None, help="none | default | wide | FILE: overrides the config's"
    )
    parser.add_argument(
        "--env-kwarg",
        type=_kv,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env kwarg (JSON value), repeatable; merged over the config's",
    )
    parser.add_argument("--checkpoint-freq", type=_steps, default=None, help="env steps")
    parser.add_argument("--eval-freq", type=int, default=None, help="env steps (0: off)")
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument(
        "--time-limit", type=float, default=None, help="stop after this many minutes"
    )
    parser.add_argument("--no-video", action="store_true", help="skip the final video")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-q", "--quiet", action="store_true", help="less output")
    return parser


def _kv(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of ``simenvs eval`` (use with a subparser or a plain parser)."""
    parser.add_argument("run_dir", help="run folder written by `simenvs train --out`")
    parser.add_argument("--episodes", type=int, default=100, help="episodes (default 100)")
    parser.add_argument(
        "--randomization",
        default=None,
        help="none | default | wide | FILE (.yaml/.json spec); default: the run's own",
    )
    parser.add_argument(
        "--object-set", default=None, help="object split, e.g. test (held-out objects)"
    )
    parser.add_argument(
        "--env-kwarg",
        type=_kv,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra env kwarg (JSON value), repeatable",
    )
    parser.add_argument("--video", action="store_true", help="write eval_<tag>.mp4 (or .gif)")
    parser.add_argument("--seed", type=int, default=1_000_000, help="first episode seed")
    parser.add_argument(
        "--stochastic", action="store_true", help="sample actions instead of the mean"
    )
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--n-envs", type=int, default=4, help="envs stepped in lock-step")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser
