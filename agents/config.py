"""Training configs: YAML files in ``agents/configs`` resolved into one flat ``TrainConfig``.

A config file is written for one env id and may hold hyper-parameters for several algorithms::

    env_id: simenvs/RooftopLanding-v0
    default_algo: ppo
    env_kwargs: {obs_mode: state}
    randomization: default          # preset name, inline spec dict, or a .yaml/.json file
    ppo:                            # overrides for --algo ppo
      n_envs: 8
      normalize: true
      policy_kwargs: {net_arch: [64, 64], activation_fn: tanh}
      algo_kwargs: {n_steps: 256, learning_rate: lin_3e-4}

Resolution order (later wins): built-in defaults for the algorithm, the file's top level, the
file's section for the algorithm, then explicit command-line values. The resolved config is
plain JSON data (strings for classes and schedules), so it round-trips through
``config.json`` and a run can be rebuilt from its folder alone.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ALGOS",
    "CONFIG_DIR",
    "TrainConfig",
    "available_configs",
    "config_path_for",
    "load_config",
    "load_mapping_file",
    "resolve_policy_kwargs",
    "resolve_algo_kwargs",
    "resolve_device",
]

ALGOS = ("ppo", "sac")
VEC_MODES = ("batched", "async", "sync")
DEVICES = ("auto", "cpu", "cuda")
CONFIG_DIR = Path(__file__).parent / "configs"

_NORMALIZE_DEFAULTS = {"norm_obs": True, "norm_reward": True, "clip_obs": 10.0, "gamma": None}


@dataclass
class TrainConfig:
    """Everything a run needs; ``dataclasses.asdict`` of it is ``config.json``'s core."""

    env_id: str
    algo: str = "ppo"
    total_timesteps: int = 100_000
    n_envs: int = 8
    vec: str = "sync"
    device: str = "auto"
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    # None: the env's own default. str: preset name. dict: RandomizationSpec dict form.
    randomization: Any = None
    # Overrides for evaluation envs (e.g. {"object_set": "test"}: held-out objects).
    eval_env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: str = "MlpPolicy"
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    # None/False: no VecNormalize. True or a dict of VecNormalize kwargs: normalize.
    normalize: Any = None
    checkpoint_freq: int = 50_000
    keep_checkpoints: int = 2
    eval_freq: int = 10_000
    eval_episodes: int = 10
    final_eval_episodes: int = 50
    eval_n_envs: int = 4
    video: bool = True
    video_episodes: int = 1
    torch_threads: int | None = None
    # Keep the best validation snapshot (run/best) and ship it if it beats the final policy.
    select_best: bool = False
    # Warm start from the env's scripted expert (BC + DAgger), see pretrain.py; None: off.
    pretrain: dict[str, Any] | None = None
    # Stop training (cleanly, with all outputs) after this much wall time; None: no limit.
    time_limit_s: float | None = None
    description: str = ""
    config_file: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo={self.algo!r} is not supported; choose one of {ALGOS}")
        if self.vec not in VEC_MODES:
            raise ValueError(f"vec={self.vec!r} is not supported; choose one of {VEC_MODES}")
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise ValueError(f"device={self.device!r} is not supported; choose one of {DEVICES}")
        for name in ("total_timesteps", "n_envs", "eval_n_envs", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("checkpoint_freq", "eval_freq", "eval_episodes", "final_eval_episodes"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0 (0 disables), got {getattr(self, name)!r}")
        self.normalize_kwargs()  # validates the normalize entry

    def normalize_kwargs(self) -> dict[str, Any] | None:
        """VecNormalize kwargs, or None when the config does not normalize."""
        n = self.normalize
        if n is None or n is False:
            return None
        if n is True:
            return dict(_NORMALIZE_DEFAULTS)
        if isinstance(n, dict):
            unknown = set(n) - {
                "norm_obs",
                "norm_reward",
                "clip_obs",
                "clip_reward",
                "gamma",
                "epsilon",
                "norm_obs_keys",
            }
            if unknown:
                raise ValueError(f"normalize has unknown keys {sorted(unknown)}")
            return {**_NORMALIZE_DEFAULTS, **n}
        raise ValueError(
            f"normalize must be true, false or a dict of VecNormalize kwargs, got {n!r}"
        )

    def make_kwargs(self, evaluation: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``gym.make`` (randomization folded in)."""
        kw = copy.deepcopy(self.env_kwargs)
        if evaluation:
            kw.update(copy.deepcopy(self.eval_env_kwargs))
        if self.randomization is not None and "randomization" not in kw:
            kw["randomization"] = copy.deepcopy(self.randomization)
        return kw

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_FILE_ONLY = {"default_algo", *ALGOS}


def load_mapping_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON file holding a mapping (configs, randomization specs)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    if path.suffix.lower() not in (".yaml", ".yml", ".json"):
        raise ValueError(f"{path}: expected a .yaml, .yml or .json file")
    with open(path) as f:
        data = json.load(f) if path.suffix.lower() == ".json" else yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping at top level, got {type(data).__name__}")
    return data


def available_configs() -> dict[str, Path]:
    """Shipped config names (file stems) -> paths."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def config_path_for(env_id: str) -> Path | None:
    """The shipped config for an env id (``simenvs/DroneRace-v0`` -> ``DroneRace-v0.yaml``)."""
    name = env_id.split(":")[-1].split("/")[-1]
    p = CONFIG_DIR / f"{name}.yaml"
    return p if p.exists() else None


def _find_config(config: str | Path) -> Path:
    p = Path(config)
    if p.exists():
        return p
    shipped = available_configs()
    if str(config) in shipped:
        return shipped[str(config)]
    raise FileNotFoundError(
        f"config {str(config)!r} is neither a file nor a shipped config; "
        f"shipped configs: {sorted(shipped)}"
    )


def _check_keys(section: dict[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def _resolve_randomization(value: Any, base: Path | None) -> Any:
    """A randomization file name becomes its content, so config.json is self-contained."""
    if isinstance(value, str) and value.lower().endswith((".yaml", ".yml", ".json")):
        p = Path(value)
        if not p.is_absolute() and base is not None and not p.exists():
            p = base / p
        return load_mapping_file(p)
    return value


def _number(value: Any) -> Any:
    """YAML reads ``1e-3`` (no dot) as a string; make it the number it means."""
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return int(f) if f.is_integer() and "e" not in value.lower() and "." not in value else f
    return value


def load_config(
    env_id: str | None = None,
    algo: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a ``TrainConfig``.

    ``config`` is a file path or a shipped config name; without it the shipped config for
    ``env_id`` is used when one exists, else algorithm defaults (SB3's own). ``overrides`` are
    explicit values (e.g. from the CLI); ``None`` values are ignored.
    """
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    _check_keys(overrides, "overrides", _FIELDS)
    path = (
        _find_config(config)
        if config is not None
        else (config_path_for(env_id) if env_id else None)
    )
    file_data: dict[str, Any] = load_mapping_file(path) if path else {}
    _check_keys(file_data, str(path), _FIELDS | _FILE_ONLY)
    file_env = file_data.get("env_id")
    if env_id and file_env and env_id != file_env:
        raise ValueError(f"config {path} is written for env {file_env!r}, not {env_id!r}")
    env_id = env_id or file_env
    if not env_id:
        raise ValueError("no env id: pass ENV_ID or a config file that names env_id")
    algo = (algo or file_data.get("default_algo") or "ppo").lower()
    if algo not in ALGOS:
        raise ValueError(f"algo={algo!r} is not supported; choose one of {ALGOS}")

    merged: dict[str, Any] = {"n_envs": 8 if algo == "ppo" else 1}
    merged.update({k: v for k, v in file_data.items() if k in _FIELDS})
    section = file_data.get(algo) or {}
    if not isinstance(section, dict):
        raise ValueError(f"{path}: section {algo!r} must be a mapping")
    _check_keys(section, f"{path} [{algo}]", _FIELDS - {"env_id", "algo"})
    for k, v in section.items():
        if k in ("env_kwargs", "eval_env_kwargs") and isinstance(v, dict):
            merged[k] = {**merged.get(k, {}), **v}
        else:
            merged[k] = v
    merged.update(overrides)
    merged["env_id"] = env_id
    merged["algo"] = algo
    merged["config_file"] = str(path) if path else None
    for k in ("total_timesteps", "checkpoint_freq", "eval_freq"):
        if k in merged:
            merged[k] = int(float(merged[k]))  # YAML writes 1e6 as a string or float
    merged["algo_kwargs"] = {k: _number(v) for k, v in (merged.get("algo_kwargs") or {}).items()}
    merged["randomization"] = _resolve_randomization(
        merged.get("randomization"), path.parent if path else None
    )
    return TrainConfig(**merged)


# ---- turning JSON-able config values into Python objects ------------------------------------

_ACTIVATIONS = {
    "tanh": "Tanh",
    "relu": "ReLU",
    "elu": "ELU",
    "leaky_relu": "LeakyReLU",
    "silu": "SiLU",
    "gelu": "GELU",
}


def _import_object(name: str) -> Any:
    module, sep, attr = name.partition(":")
    if not sep:
        module, _, attr = name.rpartition(".")
    if not module:
        raise ValueError(f"cannot import {name!r}: write it as 'package.module:Name'")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_policy_kwargs(policy_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Strings for classes (``activation_fn: tanh``, ``features_extractor_class: pkg:Cls``)."""
    import torch.nn as nn

    out = copy.deepcopy(policy_kwargs)
    act = out.get("activation_fn")
    if isinstance(act, str):
        key = act.lower()
        if key in _ACTIVATIONS:
            out["activation_fn"] = getattr(nn, _ACTIVATIONS[key])
        else:
            out["activation_fn"] = _import_object(act)
    for k in ("features_extractor_class", "optimizer_class"):
        if isinstance(out.get(k), str):
            out[k] = _import_object(out[k])
    return out


def _schedule(value: Any) -> Any:
    """``lin_3e-4`` -> linear decay to 0 over training (rl_zoo3's notation)."""
    if isinstance(value, str) and value.startswith("lin_"):
        start = float(value[4:])

        def linear(progress_remaining: float) -> float:
            return progress_remaining * start

        return linear
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(
                f"cannot read schedule {value!r}: use a number or 'lin_<start>'"
            ) from None
    return value


def resolve_algo_kwargs(algo_kwargs: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(algo_kwargs)
    for k in ("learning_rate", "clip_range", "clip_range_vf"):
        if k in out:
            out[k] = _schedule(out[k])
    if isinstance(out.get("train_freq"), list):
        out["train_freq"] = tuple(out["train_freq"])
    for k in ("buffer_size", "learning_starts", "n_steps", "batch_size"):
        if isinstance(out.get(k), (float, str)):
            out[k] = int(float(out[k]))
    return out


def resolve_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device={device!r} requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use --device auto or --device cpu"
        )
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise ValueError(f"device={device!r} is not supported; choose one of {DEVICES}")
    return device
