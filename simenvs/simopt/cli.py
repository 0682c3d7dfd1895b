"""``simenvs simopt``: adapt an env's dynamics distribution to real (or stand-in) rollouts.

    simenvs simopt ENV_ID --real PATH [PATH ...] | proxy:NAME --params NAMES \\
        --iterations N --out RUN_DIR [--resume]

``--real`` takes rollout files (one per iteration; the last is reused) or a stand-in reality
name (``proxy:hidden``, ``proxy:hidden+noise``, ``proxy:full``...). ``--params`` is a
comma-separated list of scalar dynamics parameters. The run directory receives
``simopt.json`` (checkpoint, history), ``distribution.json`` (the adapted Gaussian as a
randomization-spec fragment), ``simopt.png`` and the real rollouts per iteration.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_simopt_arguments", "cmd_simopt", "simopt_main"]


def add_simopt_arguments(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``simopt`` options to a (sub)parser."""
    p.add_argument("env_id", help="registered env id, e.g. simenvs/DroneRace-v0")
    p.add_argument(
        "--real",
        nargs="+",
        required=True,
        metavar="PATH|proxy:NAME",
        help="rollout file(s) (one per iteration) or a stand-in reality such as proxy:hidden",
    )
    p.add_argument("--params", required=True, help="comma-separated parameter names to adapt")
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--out", required=True, help="run directory (checkpoint, plots, data)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--policy",
        default="expert",
        help="'expert' (the env's scripted expert) or MODULE:FACTORY, a callable env -> policy",
    )
    p.add_argument("--real-episodes", type=int, default=3, help="real episodes per iteration")
    p.add_argument("--samples", type=int, default=16, help="parameter samples per update")
    p.add_argument("--updates", type=int, default=3, help="optimizer updates per iteration")
    p.add_argument("--episodes-per-sample", type=int, default=None)
    p.add_argument("--optimizer", choices=("reps", "cmaes"), default="reps")
    p.add_argument("--epsilon", type=float, default=1.0, help="REPS KL bound")
    p.add_argument("--mode", choices=("closed_loop", "replay"), default="closed_loop")
    p.add_argument("--replay-reset-every", type=int, default=None)
    p.add_argument(
        "--prior", action="append", default=[], metavar="NAME=LOW:HIGH",
        help="uniform prior range replacing the env's default randomization for NAME",
    )  # fmt: skip
    p.add_argument(
        "--truth", action="append", default=[], metavar="NAME=VALUE",
        help="hidden value for a proxy reality (default: just outside the prior)",
    )  # fmt: skip
    p.add_argument(
        "--prior-preset", default="default",
        help="randomization whose moments start the search: default | wide | FILE.yaml",
    )  # fmt: skip
    p.add_argument("--reality-seed", type=int, default=0, help="picks which prior edge is hidden")
    p.add_argument("--fields", default=None, help="comma-separated observation fields compared")
    p.add_argument("--smooth", type=float, default=5.0, help="Gaussian smoothing sigma (steps)")
    p.add_argument(
        "--env-kwarg", action="append", default=[], metavar="KEY=VALUE",
        help="env constructor argument for simulation and stand-in reality (YAML value)",
    )  # fmt: skip
    p.add_argument(
        "--max-steps", type=int, default=None,
        help="cap on real (stand-in) episode length; sim episodes follow the real ones",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-plot", action="store_true")
    return p


def _pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"{what} expects NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _policy(spec: str) -> Any:
    if spec == "expert":
        from simenvs.agents.experts import make

        return make
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"--policy must be 'expert' or MODULE:FACTORY, got {spec!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"--policy {spec!r}: {e}") from None


def cmd_simopt(args: argparse.Namespace) -> int:
    import simenvs  # noqa: F401  (registers env ids)
    from simenvs.reality import make_reality

    from .discrepancy import Discrepancy
    from .loop import CHECKPOINT, SimOpt, SimOptConfig
    from .real import FileReality

    out = Path(args.out)
    ckpt = out / CHECKPOINT
    stored: dict[str, Any] | None = None
    if args.resume:
        if not ckpt.exists():
            raise SystemExit(f"--resume: no {CHECKPOINT} in {out}")
        stored = json.loads(ckpt.read_text())
    elif ckpt.exists():
        raise SystemExit(f"{out} already holds a SimOpt run: pass --resume or another --out")

    if stored is not None:  # the stored config wins; only the iteration count may grow
        config = SimOptConfig.from_dict(stored["config"])
        config.iterations = max(config.iterations, args.iterations)
    else:
        prior = {}
        for k, v in _pairs(args.prior, "--prior").items():
            try:
                lo, hi = (float(x) for x in v.split(":"))
            except ValueError:
                raise SystemExit(f"--prior expects NAME=LOW:HIGH, got {k}={v}") from None
            prior[k] = [lo, hi]
        import yaml

        env_kwargs = {
            k: yaml.safe_load(v) for k, v in _pairs(args.env_kwarg, "--env-kwarg").items()
        }
        if args.max_steps is not None:
            env_kwargs["max_episode_steps"] = args.max_steps
        disc = Discrepancy(
            fields=args.fields.split(",") if args.fields else None, smooth_sigma=args.smooth
        )
        try:
            config = SimOptConfig(
                env_id=args.env_id,
                params=[n.strip() for n in args.params.split(",") if n.strip()],
                iterations=args.iterations,
                real_episodes=args.real_episodes,
                samples=args.samples,
                updates=args.updates,
                episodes_per_sample=args.episodes_per_sample,
                optimizer=args.optimizer,
                epsilon=args.epsilon,
                prior=prior,
                prior_preset=args.prior_preset,
                discrepancy=disc.to_dict(),
                mode=args.mode,
                replay_reset_every=args.replay_reset_every,
                seed=args.seed,
                plot=not args.no_plot,
                sim_env_kwargs={"randomization": "none", **env_kwargs},
            )
        except ValueError as e:
            raise SystemExit(f"simopt: {e}") from None

    real_arg = args.real
    if len(real_arg) == 1 and real_arg[0].startswith("proxy:"):
        truth = {k: float(v) for k, v in _pairs(args.truth, "--truth").items()} or None
        if stored is not None and stored.get("truth"):
            truth = stored["truth"]
        real_kwargs = {k: v for k, v in config.sim_env_kwargs.items() if k != "randomization"}
        reality = make_reality(
            real_arg[0], config.env_id, params=config.params, truth=truth,
            seed=args.reality_seed, env_kwargs=real_kwargs, prior=config.prior_preset,
        )  # fmt: skip
    else:
        reality = FileReality(real_arg)
    policy = (
        _policy(args.policy) if config.mode == "closed_loop" or args.policy != "expert" else None
    )
    so = SimOpt(config, out, reality=reality, policy=policy, resume=args.resume)
    summary = so.run()
    print(json.dumps(summary, indent=1, default=float))
    return 0


def simopt_main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m simenvs.simopt.cli ...``."""
    parser = add_simopt_arguments(
        argparse.ArgumentParser(prog="simenvs simopt", description=__doc__.split("\n")[0])
    )
    return cmd_simopt(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(simopt_main())
