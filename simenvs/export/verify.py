"""Check an export against SB3 itself: the reference is ``VecNormalize.normalize_obs`` →
``model.predict(deterministic=True)`` → the env's affine action map, computed in numpy."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from simenvs.deploy.format import OUTPUT_NAME
from simenvs.export.graph import NormStats
from simenvs.export.layout import subspaces

Obs = np.ndarray | dict[str, np.ndarray]


def sample_observations(
    space: spaces.Space, n: int, rng: np.random.Generator, norm: dict[str, NormStats]
) -> Obs:
    """n observations in the policy's layout: uniform in finite bounds, else around the
    normalization statistics (3 std, so clipping is exercised) or N(0, 3^2)."""
    out = {}
    for name, sub in subspaces(space).items():
        shape = (n, *sub.shape)
        low, high = np.broadcast_to(sub.low, sub.shape), np.broadcast_to(sub.high, sub.shape)
        if np.issubdtype(sub.dtype, np.integer):
            out[name] = rng.integers(low, high, size=shape, endpoint=True).astype(sub.dtype)
            continue
        if name in norm:
            center, spread = norm[name].mean, 3.0 * np.sqrt(norm[name].var)
        else:
            center, spread = 0.0, 3.0
        values = center + spread * rng.standard_normal(shape)
        bounded = np.isfinite(low) & np.isfinite(high)
        uniform = rng.uniform(np.where(bounded, low, 0.0), np.where(bounded, high, 1.0), size=shape)
        out[name] = np.where(bounded, uniform, values).astype(sub.dtype)
    return out if isinstance(space, spaces.Dict) else out[next(iter(out))]


def sb3_normalize(vecnormalize: VecNormalize | None, obs: Obs) -> Obs:
    return obs if vecnormalize is None else vecnormalize.normalize_obs(obs)


def reference_actions(
    model: BaseAlgorithm,
    vecnormalize: VecNormalize | None,
    obs: Obs,
    scale: np.ndarray,
    offset: np.ndarray,
) -> np.ndarray:
    """Physical actions (float64) the simulator pipeline produces for a batch of observations."""
    action, _ = model.predict(sb3_normalize(vecnormalize, obs), deterministic=True)
    return np.asarray(action, dtype=np.float64) * scale + offset


def _feeds(obs: Obs, names: list[str]) -> list[np.ndarray]:
    return [obs[n] for n in names] if isinstance(obs, dict) else [obs]


def run_onnx(path: Path, obs: Obs, names: list[str]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = _feeds(obs, names)
    feed = {n: np.ascontiguousarray(a) for n, a in zip(names, feeds)}
    for name, array in feed.items():
        if array.dtype.kind == "f":
            feed[name] = array.astype(np.float32)
    return session.run([OUTPUT_NAME], feed)[0]


def run_torchscript(path: Path, obs: Obs, names: list[str]) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu")
    tensors = []
    for array in _feeds(obs, names):
        tensor = torch.as_tensor(np.ascontiguousarray(array))
        tensors.append(tensor.float() if tensor.is_floating_point() else tensor)
    with torch.no_grad():
        return module(*tensors).numpy()


def parity(
    files: dict[str, Path], obs: Obs, names: list[str], reference: np.ndarray
) -> dict[str, Any]:
    """Max absolute error of each exported file against the reference actions."""
    runners = {"onnx": run_onnx, "torchscript": run_torchscript}
    errors = {}
    for fmt, path in files.items():
        out = runners[fmt](path, obs, names).astype(np.float64)
        if out.shape != reference.shape:
            raise AssertionError(f"{fmt} output shape {out.shape} != reference {reference.shape}")
        errors[fmt] = float(np.max(np.abs(out - reference)))
    return errors
