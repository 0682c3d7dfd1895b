"""Read a training run directory: model.zip, optional vecnormalize.pkl, config.json/yaml.

``vecnormalize.pkl`` is a pickle (SB3's format); it is read with an unpickler that only builds
the handful of classes a VecNormalize holds, so a tampered file cannot run code. ``model.zip``
is loaded with SB3's own loader (which cloudpickles spaces): only export runs you trust.
"""

from __future__ import annotations

import importlib
import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

MODEL_FILE = "model.zip"
VECNORMALIZE_FILE = "vecnormalize.pkl"
CONFIG_FILES = ("config.json", "config.yaml", "config.yml")

# name in config["algo"] -> "module:Class"
ALGORITHMS = {
    "ppo": "stable_baselines3:PPO",
    "a2c": "stable_baselines3:A2C",
    "sac": "stable_baselines3:SAC",
    "td3": "stable_baselines3:TD3",
    "ddpg": "stable_baselines3:DDPG",
}

# Everything a pickled VecNormalize (with its spaces and RunningMeanStd) refers to.
_PICKLE_ALLOWED = {
    ("stable_baselines3.common.vec_env.vec_normalize", "VecNormalize"),
    ("stable_baselines3.common.running_mean_std", "RunningMeanStd"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy.random._pickle", "__generator_ctor"),
    ("numpy.random._pickle", "__bit_generator_ctor"),
    ("numpy.random._pickle", "__randomstate_ctor"),
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ("numpy.random.bit_generator", "SeedSequence"),
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "slice"),
}
_PICKLE_ALLOWED_MODULES = (
    "gymnasium.spaces.",
    "numpy.dtypes",
    "numpy.random._pcg64",
    "numpy.random._mt19937",
    "numpy.random._philox",
    "numpy.random._sfc64",
)


class _VecNormalizeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_ALLOWED or module.startswith(_PICKLE_ALLOWED_MODULES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name} from a VecNormalize file: only VecNormalize, "
            "RunningMeanStd, numpy arrays and gymnasium spaces are allowed"
        )


def load_vecnormalize(path: str | Path) -> VecNormalize:
    """Load the statistics saved by ``VecNormalize.save`` without a venv (for export only)."""
    path = Path(path)
    with path.open("rb") as handle:
        obj = _VecNormalizeUnpickler(handle).load()
    if not isinstance(obj, VecNormalize):
        raise TypeError(f"{path} holds a {type(obj).__name__}, expected a VecNormalize")
    return obj


def load_config(run_dir: Path) -> dict[str, Any]:
    for name in CONFIG_FILES:
        path = run_dir / name
        if path.is_file():
            if name.endswith(".json"):
                config = json.loads(path.read_text())
            else:
                import yaml

                config = yaml.safe_load(path.read_text())
            break
    else:
        raise FileNotFoundError(
            f"{run_dir} has none of {', '.join(CONFIG_FILES)}; a run directory needs "
            '{"env_id": ..., "env_kwargs": {...}, "algo": ...}'
        )
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(config).__name__}")
    missing = [k for k in ("env_id", "algo") if not config.get(k)]
    if missing:
        raise ValueError(
            f"{path} lacks {missing}; required keys: env_id, algo (env_kwargs optional)"
        )
    if not isinstance(config.get("env_kwargs") or {}, dict):
        raise ValueError(f"{path}: env_kwargs must be a mapping, got {config['env_kwargs']!r}")
    config["env_kwargs"] = dict(config.get("env_kwargs") or {})
    return config


def algorithm_class(name: str) -> type[BaseAlgorithm]:
    key = str(name).lower()
    if key not in ALGORITHMS:
        raise ValueError(
            f"unknown algo {name!r}; supported: {sorted(a.upper() for a in ALGORITHMS)}"
        )
    module, cls = ALGORITHMS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def load_model(path: str | Path, algo: str) -> BaseAlgorithm:
    # Schedules are cloudpickled lambdas that may not load across Python versions; export does
    # not train, so constants stand in for them.
    custom = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": lambda _: 0.0}
    return algorithm_class(algo).load(str(path), device="cpu", custom_objects=custom)


@dataclass
class RunArtifacts:
    """What a run directory holds, loaded."""

    run_dir: Path
    model: BaseAlgorithm
    model_path: Path
    vecnormalize: VecNormalize | None
    config: dict[str, Any] = field(default_factory=dict)


def load_run(run_dir: str | Path) -> RunArtifacts:
    """Load model, VecNormalize statistics and config from a run directory."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    model_path = run_dir / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{run_dir} has no {MODEL_FILE} (save it with model.save(...))")
    config = load_config(run_dir)
    vn_path = run_dir / VECNORMALIZE_FILE
    vecnormalize = load_vecnormalize(vn_path) if vn_path.is_file() else None
    model = load_model(model_path, config["algo"])
    return RunArtifacts(run_dir, model, model_path, vecnormalize, config)


def training_env_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The kwargs training passed to gym.make: env_kwargs with the run's randomization folded
    in (as `simenvs.agents` does), so the export env describes the training distribution."""
    kwargs = dict(config.get("env_kwargs") or {})
    if config.get("randomization") is not None and "randomization" not in kwargs:
        kwargs["randomization"] = config["randomization"]
    return kwargs


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    """Build the env named in a run config (to read its layouts and control rate)."""
    import gymnasium as gym

    if env_id.startswith("simenvs/") and env_id not in gym.registry:
        importlib.import_module("simenvs")  # registers the simenvs ids
    try:
        return gym.make(env_id, disable_env_checker=True, **env_kwargs)
    except Exception as error:
        raise RuntimeError(
            f"could not create env {env_id!r} with env_kwargs {env_kwargs!r} to read its layouts: "
            f"{error}; pass env= to export_policy"
        ) from error
