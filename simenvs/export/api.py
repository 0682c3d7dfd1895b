"""``export_policy``: a trained SB3 policy → ONNX/TorchScript + metadata, verified against SB3."""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize, unwrap_vec_normalize

from simenvs.deploy.format import (
    FORMAT_VERSION,
    METADATA_FILE,
    ONNX_FILE,
    TORCHSCRIPT_FILE,
)
from simenvs.export import layout, verify
from simenvs.export.graph import ActionPostprocess, ExportedPolicy
from simenvs.export.run_dir import load_run, load_vecnormalize, make_env, training_env_kwargs
from simenvs.export.writers import sha256_file, write_onnx, write_torchscript

FORMATS = {"onnx": ("onnx",), "torchscript": ("torchscript",), "both": ("onnx", "torchscript")}
_FILE_NAMES = {"onnx": ONNX_FILE, "torchscript": TORCHSCRIPT_FILE}


class ExportVerificationError(AssertionError):
    """The exported graph disagrees with SB3's predict() beyond the tolerance."""


@dataclass
class ExportResult:
    """Where the export went and how well it matches SB3 (errors in physical units)."""

    out_dir: Path
    files: dict[str, Path]
    metadata: dict[str, Any]
    max_abs_error: dict[str, float] = field(default_factory=dict)


def _simenvs_version() -> str:
    try:
        return importlib.metadata.version("simenvs")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _params_sha256(model: BaseAlgorithm) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.policy.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _to_tensors(obs: verify.Obs, names: list[str]) -> tuple[torch.Tensor, ...]:
    arrays = [obs[n] for n in names] if isinstance(obs, dict) else [obs]
    return tuple(
        torch.as_tensor(a.astype(np.float32) if a.dtype.kind == "f" else a) for a in arrays
    )


def export_policy(
    source: str | Path | BaseAlgorithm,
    out_dir: str | Path,
    format: str = "onnx",
    *,
    vecnormalize: VecNormalize | str | Path | None = None,
    env: Any | None = None,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    control_hz: float | None = None,
    verify_samples: int = 256,
    atol: float = 1e-4,
    dynamo: bool = True,
    opset: int | None = None,
    seed: int = 0,
) -> ExportResult:
    """Export the deterministic actor with normalization and action mapping baked in.

    ``source`` is a run directory (see `simenvs.export`) or an SB3 model (PPO, A2C, SAC, TD3,
    DDPG). ``vecnormalize`` (object or .pkl path) defaults to the run's file or the one
    wrapping ``model.get_env()``. ``env`` (gym Env or VecEnv) supplies layouts and control rate;
    by default the run config's env is built, else ``model.get_env()`` is used. After writing,
    ``verify_samples`` random observations are run through every file and SB3's pipeline; a
    difference above ``atol`` (in normalized-action units; float32 round-off of a trained policy
    is ~1e-6..1e-5, a missing normalization or clip is >1e-2) raises ExportVerificationError.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {format!r}")
    config: dict[str, Any] = {}
    run_dir = model_path = None
    if isinstance(source, (str, Path)):
        run = load_run(source)
        model, run_dir, model_path, config = run.model, run.run_dir, run.model_path, run.config
        vn = run.vecnormalize
        env_id = env_id or config["env_id"]
        env_kwargs = training_env_kwargs(config) if env_kwargs is None else env_kwargs
    elif isinstance(source, BaseAlgorithm):
        model = source
        vn = unwrap_vec_normalize(model.get_env()) if model.get_env() is not None else None
    else:
        raise TypeError(f"source must be a run directory or an SB3 model, got {type(source)!r}")
    if isinstance(vecnormalize, (str, Path)):
        vn = load_vecnormalize(vecnormalize)
    elif vecnormalize is not None:
        vn = vecnormalize

    owned_env = False
    if env is None and env_id is not None:
        env, owned_env = make_env(env_id, env_kwargs or {}), True
    elif env is None:
        env = model.get_env()
    try:
        probe = layout.EnvProbe(env)
        spec = probe.get("spec")
        if env_id is None and spec is not None:
            env_id = spec.id
            env_kwargs = dict(spec.kwargs) if env_kwargs is None else env_kwargs
        norm = layout.norm_stats(vn, model.observation_space)
        names = layout.input_names(model.observation_space)
        inputs, images = layout.describe_inputs(
            model.observation_space,
            probe.get("observation_space"),
            probe.call("state_layout"),
            norm,
            normalize_images=bool(model.policy.normalize_images),
            image_channels=probe.get("image_channels"),
            obs_mode=probe.get("obs_mode"),
        )
        action_meta, scale, offset = layout.describe_action(
            model.action_space, bool(model.policy.squash_output), probe.call("action_layout")
        )
        hz, hz_source = layout.control_rate(probe, config.get("control_hz"), control_hz)
        randomization = layout.randomization_summary(
            probe, {**config, "env_kwargs": env_kwargs or {}}
        )
    finally:
        if owned_env:
            env.close()

    metadata: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "simenvs_version": _simenvs_version(),
        "env_id": env_id,
        "env_kwargs": layout.jsonable(env_kwargs or {}),
        "control_hz": hz,
        "inputs": inputs,
        "action": action_meta,
        "images": images,
        "normalization": _normalization_meta(vn, norm, inputs),
        "randomization": randomization,
        "source": {
            "algo": type(model).__name__,
            "policy_class": type(model.policy).__name__,
            "run_dir": str(Path(run_dir).resolve()) if run_dir else None,
            "model_file": str(Path(model_path).resolve()) if model_path else None,
            "model_sha256": sha256_file(model_path) if model_path else None,
            "params_sha256": _params_sha256(model),
            "num_timesteps": int(model.num_timesteps),
            "control_hz_source": hz_source,
            "config": layout.jsonable(config),
        },
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

    post = ActionPostprocess(model.action_space, bool(model.policy.squash_output), scale, offset)
    module = ExportedPolicy(
        model.policy, names, norm, post, dict_obs=isinstance(model.observation_space, spaces.Dict)
    ).eval()
    rng = np.random.default_rng(seed)
    example = _to_tensors(verify.sample_observations(model.observation_space, 2, rng, norm), names)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for fmt in FORMATS[format]:
        path = out_dir / _FILE_NAMES[fmt]
        if fmt == "onnx":
            write_onnx(module, example, names, path, metadata, dynamo=dynamo, opset=opset)
        else:
            write_torchscript(module, example, path, metadata)
        files[fmt] = path

    errors: dict[str, float] = {}
    if verify_samples > 0:
        obs = verify.sample_observations(model.observation_space, verify_samples, rng, norm)
        reference = verify.reference_actions(model, vn, obs, scale, offset)
        errors = verify.parity(files, obs, names, reference)
        unit = float(max(1.0, np.max(np.abs(scale))))
        bad = {fmt: e for fmt, e in errors.items() if e / unit > atol}
        if bad:
            raise ExportVerificationError(
                f"exported policy differs from SB3 predict() by {bad} (physical units; "
                f"tolerance {atol} x {unit}); files left in {out_dir} for inspection"
            )
    sidecar = {
        **metadata,
        "files": {
            fmt: {"path": path.name, "sha256": sha256_file(path)} for fmt, path in files.items()
        },
        "verification": {"observations": verify_samples, "atol": atol, "max_abs_error": errors},
    }
    (out_dir / METADATA_FILE).write_text(json.dumps(sidecar, indent=2))
    return ExportResult(out_dir, files, sidecar, errors)


def _normalization_meta(
    vn: VecNormalize | None, norm: dict[str, Any], inputs: list[dict[str, Any]]
) -> dict[str, Any]:
    if not norm:
        return {"applied_in_graph": False, "inputs": []}
    kinds = {entry["name"]: entry["kind"] for entry in inputs}
    return {
        "applied_in_graph": True,
        "method": "VecNormalize: clip((obs - mean) / sqrt(var + epsilon), -clip_obs, clip_obs)",
        "clip_obs": float(vn.clip_obs),
        "epsilon": float(vn.epsilon),
        "inputs": sorted(norm),
        "stats": {
            name: {"mean": s.mean.tolist(), "var": s.var.tolist()}
            for name, s in norm.items()
            if kinds.get(name) == "vector"
        },
    }
