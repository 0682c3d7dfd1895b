"""simenvs configs in rl_zoo3's hyper-parameter format.

rl_zoo3 works with simenvs envs out of the box (``--gym-packages simenvs`` imports the package,
which registers the ids; unknown ids fall back to rl_zoo3's ``default`` entry). To train with
the tuned simenvs configs instead, point ``--conf-file`` at the module for the algorithm::

    python -m rl_zoo3.train --algo ppo --env simenvs/DroneRace-v0 --gym-packages simenvs \\
        --conf-file simenvs.agents.zoo_ppo
"""

from __future__ import annotations

from typing import Any

from .config import available_configs, load_config, load_mapping_file, resolve_policy_kwargs

__all__ = ["zoo_hyperparams"]


def zoo_hyperparams(algo: str) -> dict[str, dict[str, Any]]:
    """{env_id: rl_zoo3 hyper-parameters} for every shipped config that covers ``algo``."""
    out: dict[str, dict[str, Any]] = {"default": {"n_timesteps": 1e6, "policy": "MlpPolicy"}}
    for name, path in available_configs().items():
        data = load_mapping_file(path)
        if algo not in data and data.get("default_algo", "ppo") != algo:
            continue
        cfg = load_config(data["env_id"], algo, path)
        if cfg.env_id in out and name != cfg.env_id.split("/")[-1]:
            continue  # variants (e.g. vision) do not replace the env's main config
        h: dict[str, Any] = {
            "n_envs": cfg.n_envs,
            "n_timesteps": float(cfg.total_timesteps),
            "policy": cfg.policy,
            **cfg.algo_kwargs,
        }
        norm = cfg.normalize_kwargs()
        if norm is not None:
            h["normalize"] = {k: v for k, v in norm.items() if v is not None}
        if cfg.policy_kwargs:
            h["policy_kwargs"] = resolve_policy_kwargs(cfg.policy_kwargs)
        kwargs = cfg.make_kwargs()
        if kwargs:
            h["env_kwargs"] = kwargs
        if cfg.env_id.startswith("simenvs/"):
            h["monitor_kwargs"] = {"info_keywords": ("is_success",)}
        out[cfg.env_id] = h
    return out
