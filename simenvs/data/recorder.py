"""``RolloutRecorder``: a Gymnasium wrapper that writes every episode it sees to a rollout file.

Wrap any env (simenvs or not), run any policy, and the episodes land in the documented npz
format: the file is rewritten after each finished episode, so a crash keeps what was done.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .format import Episode, Rollouts, save_rollouts

__all__ = [
    "RolloutRecorder",
    "obs_vector",
    "obs_layout_of",
    "action_layout_of",
    "control_hz_of",
    "sim_state_of",
    "set_sim_state",
]

try:  # MuJoCo is a dependency of simenvs, but the recorder also serves non-MuJoCo envs.
    import mujoco

    SIM_STATE_SPEC = int(mujoco.mjtState.mjSTATE_INTEGRATION)
except ImportError:  # pragma: no cover
    mujoco = None
    SIM_STATE_SPEC = None


def obs_vector(env: gym.Env, obs: Any, obs_key: str | None = None) -> np.ndarray:
    """The flat state observation to record from an env observation.

    A 1-D array is used as is; a dict uses ``obs_key`` (default ``"state"``). Anything else
    (images only) falls back to ``env.unwrapped.state_obs()`` when the env has it.
    """
    if isinstance(obs, dict):
        key = obs_key or "state"
        if key in obs:
            return np.asarray(obs[key], dtype=np.float64).reshape(-1)
    elif obs_key is None:
        arr = np.asarray(obs)
        if arr.ndim == 1 and arr.dtype.kind in "fiub":
            return arr.astype(np.float64)
    base = env.unwrapped
    if hasattr(base, "state_obs"):
        return np.asarray(base.state_obs(), dtype=np.float64).reshape(-1)
    kind = f"dict with keys {sorted(obs)}" if isinstance(obs, dict) else f"shape {np.shape(obs)}"
    raise ValueError(
        f"cannot record observation ({kind}): pass obs_key naming a flat entry, or use an env "
        "with a 1-D observation or a state_obs() method"
    )


def obs_layout_of(env: gym.Env, dim: int) -> list[tuple[str, int, str]]:
    """The env's ``state_layout()`` when it matches ``dim``, else one field named ``obs``."""
    base = env.unwrapped
    if hasattr(base, "state_layout"):
        layout = [(str(n), int(s), str(u)) for n, s, u in base.state_layout()]
        if sum(s for _, s, _ in layout) == dim:
            return layout
    return [("obs", dim, "")]


def action_layout_of(env: gym.Env) -> list[tuple[str, str, float, float]] | None:
    base = env.unwrapped
    if hasattr(base, "action_layout"):
        return [(str(n), str(u), float(lo), float(hi)) for n, u, lo, hi in base.action_layout()]
    return None


def control_hz_of(env: gym.Env) -> float | None:
    """Control rate from ``control_hz``, ``dt`` or ``metadata['render_fps']``, if any."""
    base = env.unwrapped
    hz = getattr(base, "control_hz", None)
    if hz:
        return float(hz)
    dt = getattr(base, "dt", None)
    if isinstance(dt, (int, float)) and dt > 0:
        return 1.0 / float(dt)
    fps = (getattr(base, "metadata", None) or {}).get("render_fps")
    return float(fps) if fps else None


def _mj(env: gym.Env) -> tuple[Any, Any] | None:
    base = env.unwrapped
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if mujoco is None or not isinstance(model, mujoco.MjModel):
        return None
    return model, data


def sim_state_of(env: gym.Env) -> np.ndarray | None:
    """MuJoCo integration state of a MuJoCo-backed env (None otherwise)."""
    md = _mj(env)
    if md is None:
        return None
    model, data = md
    out = np.empty(mujoco.mj_stateSize(model, SIM_STATE_SPEC))
    mujoco.mj_getState(model, data, out, SIM_STATE_SPEC)
    return out


def set_sim_state(env: gym.Env, state: np.ndarray, spec: int | None = None) -> None:
    """Write a recorded integration state into the env's ``MjData`` and recompute derived data."""
    md = _mj(env)
    if md is None:
        raise ValueError(f"{type(env.unwrapped).__name__} has no MuJoCo model/data to set state on")
    model, data = md
    spec = SIM_STATE_SPEC if spec is None else int(spec)
    size = mujoco.mj_stateSize(model, spec)
    state = np.asarray(state, dtype=np.float64)
    if state.shape != (size,):
        raise ValueError(
            f"recorded sim_state has {state.shape} entries but this model's state (spec {spec}) "
            f"has {size}: the recording comes from a different model"
        )
    mujoco.mj_setState(model, data, state, spec)
    mujoco.mj_forward(model, data)


class RolloutRecorder(gym.Wrapper):
    """Record (observation, action, time, reward, success, params) of every episode to ``path``.

    ``source`` says where the data came from ("sim", "proxy:hidden", "hardware:lab1"...).
    ``params_prefixes`` picks which ``info["params"]`` entries are stored per episode (stand-in
    realities store only ``layout.`` so hidden dynamics never leak into the data). The file is
    rewritten after every finished episode (``flush_every_episode``) and on ``close()``.
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | os.PathLike | None,
        *,
        source: str = "sim",
        obs_key: str | None = None,
        control_hz: float | None = None,
        params_prefixes: Sequence[str] | None = None,
        record_sim_state: bool = True,
        flush_every_episode: bool = True,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(env)
        self.path = None if path is None else Path(path)
        self.source = source
        self.obs_key = obs_key
        hz = control_hz or control_hz_of(env)
        if not hz or not math.isfinite(hz) or hz <= 0:
            raise ValueError(
                f"control rate of {type(env.unwrapped).__name__} is unknown ({hz!r}): "
                "pass control_hz"
            )
        self.control_hz = float(hz)
        self.params_prefixes = None if params_prefixes is None else tuple(params_prefixes)
        self.record_sim_state = record_sim_state and _mj(env) is not None
        self.flush_every_episode = flush_every_episode
        self.extra = dict(extra or {})
        self.episodes: list[Episode] = []
        self._layout: list[tuple[str, int, str]] | None = None
        self._cur: dict[str, Any] | None = None

    # -- recording -----------------------------------------------------------------------------
    def _filter_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if self.params_prefixes is None:
            return dict(params)
        return {k: v for k, v in params.items() if k.startswith(self.params_prefixes)}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._finish(truncated=True)
        obs, info = self.env.reset(seed=seed, options=options)
        vec = obs_vector(self.env, obs, self.obs_key)
        if self._layout is None:
            self._layout = obs_layout_of(self.env, vec.shape[0])
        self._cur = {
            "obs": [vec],
            "actions": [],
            "rewards": [],
            "state": [sim_state_of(self.env)] if self.record_sim_state else None,
            "seed": seed,
            "params": self._filter_params(info.get("params", {})),
            "success": None,
        }
        return obs, info

    def step(self, action):
        if self._cur is None:
            raise RuntimeError("RolloutRecorder.step called before reset")
        obs, reward, terminated, truncated, info = self.env.step(action)
        cur = self._cur
        cur["actions"].append(np.asarray(action, dtype=np.float64).reshape(-1))
        cur["obs"].append(obs_vector(self.env, obs, self.obs_key))
        cur["rewards"].append(float(reward))
        if cur["state"] is not None:
            cur["state"].append(sim_state_of(self.env))
        if "is_success" in info:
            cur["success"] = bool(info["is_success"])
        if terminated or truncated:
            self._finish(terminated=bool(terminated), truncated=bool(truncated))
        return obs, reward, terminated, truncated, info

    def _finish(self, terminated: bool = False, truncated: bool = False) -> None:
        cur, self._cur = self._cur, None
        if cur is None or not cur["actions"]:
            return
        t = len(cur["actions"])
        self.episodes.append(
            Episode(
                obs=np.stack(cur["obs"]),
                actions=np.stack(cur["actions"]),
                time=np.arange(t + 1, dtype=np.float64) / self.control_hz,
                rewards=np.asarray(cur["rewards"], dtype=np.float64),
                success=cur["success"],
                terminated=terminated,
                truncated=truncated,
                seed=cur["seed"],
                params=cur["params"],
                sim_state=None if cur["state"] is None else np.stack(cur["state"]),
            )
        )
        if self.flush_every_episode and self.path is not None:
            self.flush()

    # -- output --------------------------------------------------------------------------------
    def rollouts(self) -> Rollouts:
        """The finished episodes so far as a ``Rollouts`` object."""
        env_spec = getattr(self.env, "spec", None)
        layout = self._layout or [("obs", 1, "")]
        return Rollouts(
            episodes=list(self.episodes),
            obs_layout=layout,
            control_hz=self.control_hz,
            env_id=env_spec.id if env_spec is not None else None,
            source=self.source,
            action_layout=action_layout_of(self.env),
            sim_state_spec=SIM_STATE_SPEC if self.record_sim_state else None,
            extra=self.extra,
        )

    def flush(self) -> Path | None:
        """Write the finished episodes to ``path`` now (atomic replace)."""
        if self.path is None or not self.episodes:
            return None
        return save_rollouts(self.rollouts(), self.path)

    def close(self):
        self._finish(truncated=True)
        self.flush()
        return super().close()
