"""Export trained SB3 policies for hardware: ONNX / TorchScript with everything baked in.

    from simenvs.export import export_policy
    result = export_policy("runs/grasp_ppo", "exports/grasp", format="both")
    # CLI: simenvs export runs/grasp_ppo --format both --out exports/grasp

The exported graph takes raw observations and returns physical commands: VecNormalize
statistics (mean, var, clip_obs, epsilon), SB3's action clip (PPO/A2C) or squash-unscale
(SAC/TD3/DDPG) and the env's ``action_layout`` affine map are inside it. Output files and the
graph contract are specified in `simenvs.deploy.format`; run them with `simenvs.deploy.Policy`
(numpy + onnxruntime only).

Run directory format (what training must write; `simenvs.agents` matches this)::

    RUN_DIR/
      model.zip          model.save(...) of PPO, A2C, SAC, TD3 or DDPG       (required)
      vecnormalize.pkl   VecNormalize.save(...) if training normalized obs   (optional)
      config.json        JSON object, at least:                             (required)
                           {"env_id": "simenvs/Grasp-v0",     # gym id (or "module:Id")
                            "env_kwargs": {...},              # gym.make kwargs, JSON-safe
                            "algo": "PPO"}                    # case-insensitive
                         optional keys read by export:
                           "control_hz": float     overrides the env's control rate
                           "randomization": ...    preset name / spec dict used in training;
                                                   folded into env_kwargs like training does
                           "randomization_spec": {...}  the spec training resolved (recorded)
                         everything else (seed, total_timesteps, ...) is copied verbatim into
                         the metadata's source.config.
                         (config.yaml with the same keys is read if config.json is absent)

Export builds ``gym.make(env_id, **env_kwargs)`` once to read the env's ``state_layout()``,
``action_layout()``, ``control_hz`` (else ``1/dt``), optional ``image_channels`` and
randomization spec; envs without layouts get generic names and their Box bounds.
vecnormalize.pkl is read with an allow-list unpickler; model.zip with SB3's loader (trust it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Lazy (PEP 562): `import simenvs.export.cli` stays light for argument parsing; torch and
# stable-baselines3 load on first use of the API.
_API = {
    "FORMATS": "simenvs.export.api",
    "ExportResult": "simenvs.export.api",
    "ExportVerificationError": "simenvs.export.api",
    "export_policy": "simenvs.export.api",
    "RunArtifacts": "simenvs.export.run_dir",
    "load_run": "simenvs.export.run_dir",
    "load_vecnormalize": "simenvs.export.run_dir",
}

if TYPE_CHECKING:
    from simenvs.export.api import FORMATS, ExportResult, ExportVerificationError, export_policy
    from simenvs.export.run_dir import RunArtifacts, load_run, load_vecnormalize


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'simenvs.export' has no attribute {name!r}")


__all__ = [
    "FORMATS",
    "ExportResult",
    "ExportVerificationError",
    "RunArtifacts",
    "export_policy",
    "load_run",
    "load_vecnormalize",
]
