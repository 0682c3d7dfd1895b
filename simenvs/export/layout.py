"""Describe a policy's inputs and outputs for the metadata (from model, env and VecNormalize).

The model's observation space is the source of truth for what the graph takes (it is what the
network saw, CHW images included); the env supplies names and units (``state_layout``,
``action_layout``), the control rate and the randomization summary. Envs without layouts get
generic names and their Box bounds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from simenvs.deploy.format import SINGLE_INPUT_NAME
from simenvs.export.graph import NormStats


class EnvProbe:
    """Attributes/methods of a gym Env or SB3 VecEnv (its first sub-env); None where absent."""

    def __init__(self, env: Any | None):
        self.env = env

    def get(self, name: str) -> Any | None:
        if self.env is None:
            return None
        try:
            if isinstance(self.env, VecEnv):
                return self.env.get_attr(name, indices=[0])[0]
            return self.env.get_wrapper_attr(name)
        except AttributeError:
            return None

    def call(self, name: str) -> Any | None:
        if self.env is None:
            return None
        try:
            if isinstance(self.env, VecEnv):
                return self.env.env_method(name, indices=[0])[0]
            method = self.env.get_wrapper_attr(name)
        except AttributeError:
            return None
        return method() if callable(method) else method


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy → lists/scalars, tuples → lists, inf/nan and unknowns → str."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if np.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value))
    return str(value)


def input_names(space: spaces.Space) -> list[str]:
    if isinstance(space, spaces.Box):
        return [SINGLE_INPUT_NAME]
    if isinstance(space, spaces.Dict):
        bad = [k for k, s in space.spaces.items() if not isinstance(s, spaces.Box)]
        if bad:
            raise TypeError(
                f"Dict observation keys {bad} are not Box spaces; only Box can be exported"
            )
        return [str(k) for k in space.spaces]
    raise TypeError(f"cannot export observation space {space}: only Box and Dict of Box")


def subspaces(space: spaces.Space) -> dict[str, spaces.Box]:
    if isinstance(space, spaces.Dict):
        return {str(k): s for k, s in space.spaces.items()}
    return {SINGLE_INPUT_NAME: space}


def _stat(stat: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    stat = np.asarray(stat, dtype=np.float64)
    if stat.shape != tuple(shape) and stat.shape != ():
        raise ValueError(
            f"VecNormalize statistics for {name!r} have shape {stat.shape}, "
            f"the policy input {shape}"
        )
    return stat


def norm_stats(
    vecnormalize: VecNormalize | None, model_space: spaces.Space
) -> dict[str, NormStats]:
    """Per-input statistics that ``VecNormalize.normalize_obs`` would apply (empty if none)."""
    if vecnormalize is None or not vecnormalize.norm_obs:
        return {}
    by_name = subspaces(model_space)
    if isinstance(model_space, spaces.Dict):
        if not isinstance(vecnormalize.obs_rms, dict):
            raise ValueError("VecNormalize has Box statistics but the policy takes a Dict")
        rms_by_name = {str(k): vecnormalize.obs_rms[k] for k in vecnormalize.norm_obs_keys}
    else:
        if isinstance(vecnormalize.obs_rms, dict):
            raise ValueError("VecNormalize has Dict statistics but the policy takes a Box")
        rms_by_name = {SINGLE_INPUT_NAME: vecnormalize.obs_rms}
    stats = {}
    for name, rms in rms_by_name.items():
        if name not in by_name:
            raise ValueError(f"VecNormalize normalizes {name!r}, which the policy does not take")
        shape = by_name[name].shape
        stats[name] = NormStats(
            mean=_stat(rms.mean, shape, name),
            var=_stat(rms.var, shape, name),
            clip=float(vecnormalize.clip_obs),
            epsilon=float(vecnormalize.epsilon),
        )
    return stats


def _state_fields(layout: Any, size: int) -> list[dict[str, Any]] | None:
    if not layout:
        return None
    fields, start = [], 0
    for entry in layout:
        if len(entry) != 3:
            raise ValueError(f"state_layout entry {entry!r} is not (name, size, unit)")
        name, n, unit = entry
        fields.append({"name": str(name), "size": int(n), "unit": str(unit), "start": start})
        start += int(n)
    return fields if start == size else None


def _env_layout(model_shape: tuple[int, ...], env_shape: tuple[int, ...] | None) -> str:
    if env_shape is None or tuple(env_shape) == tuple(model_shape):
        return "CHW"
    c, h, w = model_shape
    if tuple(env_shape) == (h, w, c):
        return "HWC"
    raise ValueError(f"env image shape {env_shape} is neither {model_shape} (CHW) nor {(h, w, c)}")


_OBS_MODE_COLORS = {"rgb": "RGB", "state_rgb": "RGB", "depth": "depth", "rgbd": "RGB+depth"}


def _color(channels: int, declared: Any, obs_mode: Any) -> str:
    """Channel meaning: the env's ``image_channels``, else its obs_mode, else by count."""
    if declared:
        return "+".join(str(c) for c in declared)
    if obs_mode in _OBS_MODE_COLORS:
        return _OBS_MODE_COLORS[obs_mode]
    return {1: "gray", 3: "RGB"}.get(channels, f"{channels} channels")


def describe_inputs(
    model_space: spaces.Space,
    env_space: spaces.Space | None,
    state_layout: Any,
    norm: dict[str, NormStats],
    normalize_images: bool,
    image_channels: Any = None,
    obs_mode: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(inputs, images) metadata entries, in graph input order."""
    model_sub = subspaces(model_space)
    env_sub = subspaces(env_space) if env_space is not None else {}
    if env_space is not None and set(env_sub) != set(model_sub):
        raise ValueError(
            f"env observation keys {sorted(env_sub)} differ from the policy's {sorted(model_sub)}"
        )
    vectors = [n for n, s in model_sub.items() if len(s.shape) == 1]
    inputs, images = [], {}
    for name, space in model_sub.items():
        env_s = env_sub.get(name)
        entry: dict[str, Any] = {
            "name": name,
            "shape": list(space.shape),
            "normalized_in_graph": name in norm,
        }
        if is_image_space(space, check_channels=False) and len(space.shape) == 3:
            if not is_image_space_channels_first(space):
                raise ValueError(f"policy input {name!r} {space.shape} is not channel-first")
            c, h, w = space.shape
            env_layout = _env_layout(space.shape, None if env_s is None else env_s.shape)
            entry.update(
                kind="image",
                dtype=np.dtype(space.dtype).name,
                layout="CHW",
                env_layout=env_layout,
                fields=None,
            )
            images[name] = {
                "height": h,
                "width": w,
                "channels": c,
                "channel_order": "CHW",
                "env_channel_order": env_layout,
                "color": _color(c, image_channels, obs_mode),
                "dtype": np.dtype(space.dtype).name,
                "value_range": [0, 255],
                "divided_by_255_in_graph": bool(normalize_images),
            }
        else:
            if env_s is not None and tuple(env_s.shape) != tuple(space.shape):
                raise ValueError(
                    f"env observation {name!r} has shape {env_s.shape}, the policy {space.shape}"
                )
            fields = None
            if len(space.shape) == 1 and (name == "state" or len(vectors) == 1):
                fields = _state_fields(state_layout, space.shape[0])
            if fields is None and len(space.shape) == 1:
                fields = [{"name": name, "size": space.shape[0], "unit": "", "start": 0}]
            entry.update(
                kind="vector",
                dtype="float32",
                layout=None,
                fields=fields,
                env_dtype=np.dtype(space.dtype).name,
            )
        inputs.append(entry)
    return inputs, images


def describe_action(
    space: spaces.Space, squash: bool, action_layout: Any
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(metadata, scale, offset) with ``physical = env_action * scale + offset``."""
    if not isinstance(space, spaces.Box) or len(space.shape) != 1:
        raise TypeError(f"only 1-D Box action spaces can be exported, got {space}")
    n = space.shape[0]
    env_low = np.asarray(space.low, dtype=np.float64)
    env_high = np.asarray(space.high, dtype=np.float64)
    if not (np.isfinite(env_low).all() and np.isfinite(env_high).all()):
        raise ValueError(f"action space {space} has infinite bounds; a robot command needs limits")
    if action_layout:
        if len(action_layout) != n:
            raise ValueError(f"action_layout has {len(action_layout)} entries, action space {n}")
        names = [str(e[0]) for e in action_layout]
        units = [str(e[1]) for e in action_layout]
        at_minus = np.array([float(e[2]) for e in action_layout])
        at_plus = np.array([float(e[3]) for e in action_layout])
        scale, offset = (at_plus - at_minus) / 2.0, (at_plus + at_minus) / 2.0
        source = "action_layout"
    else:
        names, units = [f"action_{i}" for i in range(n)], [""] * n
        scale, offset = np.ones(n), np.zeros(n)
        source = "box_bounds"
    ends = np.stack([env_low * scale + offset, env_high * scale + offset])
    meta = {
        "names": names,
        "units": units,
        "shape": [n],
        "dtype": "float32",
        "low": ends.min(axis=0).tolist(),
        "high": ends.max(axis=0).tolist(),
        "env_low": env_low.tolist(),
        "env_high": env_high.tolist(),
        "scale": scale.tolist(),
        "offset": offset.tolist(),
        "postprocess": "squash_unscale" if squash else "clip",
        "layout_source": source,
    }
    return meta, scale, offset


def control_rate(probe: EnvProbe, config_hz: Any, override: float | None) -> tuple[Any, str]:
    """(Hz, where it came from): explicit > run config > env.control_hz > 1/env.dt > render_fps."""
    if override is not None:
        return float(override), "argument"
    if config_hz is not None:
        return float(config_hz), "config"
    hz = probe.get("control_hz")
    if hz:
        return float(hz), "env.control_hz"
    dt = probe.get("dt")
    if dt:
        return 1.0 / float(dt), "env.dt"
    fps = (probe.get("metadata") or {}).get("render_fps")
    if fps:
        return float(fps), "env.metadata.render_fps"
    return None, "unknown"


def randomization_summary(probe: EnvProbe, config: dict[str, Any]) -> dict[str, Any] | None:
    """What training randomized: the configured preset/spec, the spec the run resolved
    (config ``randomization_spec``) and the env's own description of its bound distribution."""
    summary: dict[str, Any] = {}
    configured = config.get("randomization", (config.get("env_kwargs") or {}).get("randomization"))
    if configured is not None:
        summary["configured"] = jsonable(configured)
    if config.get("randomization_spec") is not None:
        summary["training_spec"] = jsonable(config["randomization_spec"])
    described = probe.call("randomization_summary")
    if described is not None:
        summary["env_summary"] = jsonable(described)
    elif "training_spec" not in summary:
        for attr in ("randomization_spec", "randomization"):
            spec = probe.get(attr)
            if spec is not None and not (callable(spec) and not hasattr(spec, "to_dict")):
                summary["env_spec"] = jsonable(spec)
                break
    return summary or None
