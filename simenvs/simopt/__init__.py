"""SimOpt: adapt the dynamics randomization to real rollouts (Chebotar et al. 2019).

* ``Discrepancy`` - weighted L1 + L2 between sim and real observation trajectories.
* ``REPS`` / ``CMAES`` - ask/tell optimizers over N(mean, cov) (``make_optimizer``).
* ``SimOpt`` + ``SimOptConfig`` - the loop with checkpoints, plots and an offline replay mode.
* ``RolloutTask`` / ``Job`` / ``Executor`` / ``LocalExecutor`` - how simulated rollouts run.
* ``FileReality`` / ``CallbackReality`` - real data from files or a hardware hook
  (stand-in realities: ``simenvs.reality.make_reality``).
* ``SB3Trainer`` / ``SB3PolicyFactory`` / ``evaluate_success`` - train or warm-start SB3
  policies per iteration, and measure success in a reality (``training``).
* ``simopt_main`` - the ``simenvs simopt`` command.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy: ``simenvs simopt --help`` and ``simenvs.simopt.cli`` stay light; the numerical stack
# loads on first use of a name.
_WHERE = {
    "CMAES": "cmaes",
    "Discrepancy": "discrepancy",
    "align": "discrepancy",
    "CHECKPOINT": "loop",
    "SimOpt": "loop",
    "SimOptConfig": "loop",
    "Trainer": "loop",
    "TrainRequest": "loop",
    "Optimizer": "optimizer",
    "ParamSpace": "optimizer",
    "make_optimizer": "optimizer",
    "sanitize_costs": "optimizer",
    "CallbackReality": "real",
    "FileReality": "real",
    "RealSystem": "real",
    "REPS": "reps",
    "reps_weights": "reps",
    "Executor": "rollout",
    "Job": "rollout",
    "LocalExecutor": "rollout",
    "Policy": "rollout",
    "PolicyFactory": "rollout",
    "Replay": "rollout",
    "RolloutTask": "rollout",
    "SB3Trainer": "training",
    "SB3PolicyFactory": "training",
    "SB3Policy": "training",
    "evaluate_success": "training",
    "merged_spec": "training",
    "warm_start": "training",
    "finetune": "training",
}

__all__ = [
    "SB3Trainer",
    "SB3PolicyFactory",
    "SB3Policy",
    "evaluate_success",
    "merged_spec",
    "warm_start",
    "finetune",
    "CHECKPOINT",
    "CMAES",
    "CallbackReality",
    "Discrepancy",
    "Executor",
    "FileReality",
    "Job",
    "LocalExecutor",
    "Optimizer",
    "ParamSpace",
    "Policy",
    "PolicyFactory",
    "REPS",
    "RealSystem",
    "Replay",
    "RolloutTask",
    "SimOpt",
    "SimOptConfig",
    "TrainRequest",
    "Trainer",
    "align",
    "make_optimizer",
    "reps_weights",
    "sanitize_costs",
    "simopt_main",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def simopt_main(argv: list[str] | None = None) -> int:
    """Entry point of ``simenvs simopt`` (see ``simenvs.simopt.cli``)."""
    from .cli import simopt_main as _main

    return _main(argv)
