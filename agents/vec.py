"""Vectorized environments for SB3: sync, async (subprocesses) and natively batched.

``EnvFactory`` is a picklable, module-level callable, so SubprocVecEnv workers started with
forkserver/spawn can build the env: it imports the env's package itself (Gymnasium 1.x has no
plugin auto-import). ``--vec batched`` uses an env's Gymnasium ``vector_entry_point`` (the
natively batched MuJoCo env) through ``GymVectorEnvAdapter``; plugging a batched env in is the
single function ``make_batched_vec_env``.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
from stable_baselines3.common.vec_env import (
    DummyVecEnv,
    SubprocVecEnv,
    VecEnv,
    VecMonitor,
    VecNormalize,
    VecTransposeImage,
)

VEC_MODES = ("batched", "async", "sync")

__all__ = [
    "EnvFactory",
    "ensure_registered",
    "make_env",
    "make_vec_env",
    "make_batched_vec_env",
    "BatchedUnavailable",
    "wrap_for_policy",
    "GymVectorEnvAdapter",
]


def ensure_registered(env_id: str) -> None:
    """Import the package that registers ``env_id`` (``simenvs/Grasp-v0`` -> ``simenvs``).

    ``module:Env-v0`` ids are imported by Gymnasium itself; a namespaced id whose namespace is
    an importable package is imported here, so worker processes and rl_zoo3 find it too.
    """
    if ":" in env_id or env_id in gym.registry:
        return
    namespace = env_id.split("/")[0] if "/" in env_id else None
    if namespace:
        try:
            importlib.import_module(namespace)
        except ImportError as e:
            raise gym.error.NameNotFound(
                f"env {env_id!r} is not registered and package {namespace!r} failed to import: {e}"
            ) from e


def make_env(env_id: str, env_kwargs: dict[str, Any] | None = None, **extra: Any) -> gym.Env:
    """``gym.make`` after ``ensure_registered``."""
    ensure_registered(env_id)
    return gym.make(env_id, **{**(env_kwargs or {}), **extra})


@dataclass(frozen=True)
class EnvFactory:
    """Picklable env constructor for one vector-env slot."""

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    render_mode: str | None = None
    monitor: bool = True

    def __call__(self) -> gym.Env:
        extra = {"render_mode": self.render_mode} if self.render_mode else {}
        env = make_env(self.env_id, self.env_kwargs, **extra)
        return Monitor(env) if self.monitor else env


def make_vec_env(
    env_id: str,
    n_envs: int,
    vec: str = "sync",
    seed: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[VecEnv, str]:
    """Build a monitored SB3 VecEnv; returns it and the vec mode actually used."""
    env_kwargs = env_kwargs or {}
    if vec not in ("sync", "async", "batched"):
        raise ValueError(
            f"vec={vec!r} is not supported; choose one of ('batched', 'async', 'sync')"
        )
    venv: VecEnv | None = None
    if vec == "batched":
        try:
            venv = make_batched_vec_env(env_id, n_envs, env_kwargs)
        except BatchedUnavailable as e:
            warnings.warn(f"--vec batched: {e}; falling back to --vec sync", stacklevel=2)
            vec = "sync"
    if venv is None:
        fns = [EnvFactory(env_id, env_kwargs) for _ in range(n_envs)]
        if vec == "async" and n_envs > 1:
            venv = SubprocVecEnv(fns)  # forkserver on Linux: EnvFactory re-imports the env package
        else:
            vec = "sync" if vec == "async" else vec
            venv = DummyVecEnv(fns)
    if seed is not None:
        venv.seed(seed)
    return venv, vec


class BatchedUnavailable(RuntimeError):
    """The env has no natively batched implementation SB3 can use."""


_SUPPORTED_AUTORESET = ("SAME_STEP", "DISABLED")


def make_batched_vec_env(
    env_id: str, n_envs: int, env_kwargs: dict[str, Any] | None = None
) -> VecEnv:
    """The natively batched env for ``env_id`` as a monitored SB3 VecEnv.

    This is the one place a batched env plugs in: simenvs ids use
    ``simenvs.vector.make_batched_vec_env`` (one ``mujoco.batch`` for all sims); other ids
    build the Gymnasium registry's ``vector_entry_point`` (``gym.make_vec(...,
    vectorization_mode="vector_entry_point")``) and adapt it to SB3. Raises
    ``BatchedUnavailable`` (with the reason) when there is none or its autoreset mode cannot
    be adapted.
    """
    ensure_registered(env_id)
    spec = gym.spec(env_id)
    if spec.vector_entry_point is None:
        raise BatchedUnavailable(
            f"{env_id} has no natively batched implementation yet (no vector_entry_point)"
        )
    if env_id.startswith("simenvs/"):
        # simenvs ships its own SB3 adapter of BatchedVectorEnv (SameStep autoreset)
        from simenvs.vector import make_batched_vec_env as native

        return VecMonitor(native(env_id, n_envs, **(env_kwargs or {})))
    venv = gym.make_vec(
        env_id, num_envs=n_envs, vectorization_mode="vector_entry_point", **(env_kwargs or {})
    )
    mode = _autoreset_mode(venv)
    if mode.name not in _SUPPORTED_AUTORESET:
        venv.close()
        raise BatchedUnavailable(
            f"{env_id}'s batched env {type(venv).__name__} uses autoreset mode {mode.name}; "
            f"SB3 needs one of {_SUPPORTED_AUTORESET}"
        )
    return VecMonitor(GymVectorEnvAdapter(venv))


def _autoreset_mode(venv: gym.vector.VectorEnv) -> gym.vector.AutoresetMode:
    mode = venv.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    return gym.vector.AutoresetMode(mode) if isinstance(mode, str) else mode


def wrap_for_policy(venv: VecEnv, normalize: dict[str, Any] | None) -> VecEnv:
    """Apply VecNormalize (if configured) and the image transpose SB3 would add itself.

    Done here rather than by SB3 so training, evaluation and resumed runs wrap identically.
    For dict observations only non-image keys are normalized.
    """
    if normalize is not None:
        kwargs = dict(normalize)
        space = venv.observation_space
        if isinstance(space, gym.spaces.Dict) and kwargs.get("norm_obs_keys") is None:
            kwargs["norm_obs_keys"] = [
                k for k, s in space.spaces.items() if not is_image_space(s, check_channels=False)
            ]
        if isinstance(space, gym.spaces.Box) and is_image_space(space, check_channels=False):
            kwargs["norm_obs"] = False
        if kwargs.get("gamma") is None:
            kwargs.pop("gamma", None)
        venv = VecNormalize(venv, **kwargs)
    return _transpose_images(venv)


def _needs_transpose(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Dict):
        return any(_needs_transpose(s) for s in space.spaces.values())
    return is_image_space(space) and not is_image_space_channels_first(space)


def _transpose_images(venv: VecEnv) -> VecEnv:
    return VecTransposeImage(venv) if _needs_transpose(venv.observation_space) else venv


class GymVectorEnvAdapter(VecEnv):
    """A Gymnasium ``VectorEnv`` seen through SB3's ``VecEnv`` API.

    SB3 wants autoreset within the same step with the terminal observation in
    ``info["terminal_observation"]`` and a list of per-env info dicts. Supported autoreset
    modes: ``SAME_STEP`` (uses ``final_obs``/``final_info``) and ``DISABLED`` (the adapter
    resets finished sub-envs with ``reset(options={"reset_mask": done})``).
    """

    def __init__(self, venv: gym.vector.VectorEnv):
        self.venv = venv
        mode = _autoreset_mode(venv)
        if mode not in (gym.vector.AutoresetMode.SAME_STEP, gym.vector.AutoresetMode.DISABLED):
            raise ValueError(
                f"{type(venv).__name__} uses autoreset mode {mode}; the SB3 adapter needs "
                "SAME_STEP or DISABLED"
            )
        self.autoreset_mode = mode
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = getattr(venv, "render_mode", None)
        self._actions: np.ndarray | None = None

    # -- info conversion: dict of arrays with "_key" masks -> list of dicts --
    def _split_infos(self, infos: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for key, value in infos.items():
            if key.startswith("_"):
                continue
            mask = infos.get("_" + key)
            if isinstance(value, dict):
                sub = self._split_infos(value)
                for i in range(self.num_envs):
                    if mask is None or mask[i]:
                        out[i][key] = sub[i]
                continue
            for i in range(self.num_envs):
                if mask is None or mask[i]:
                    v = (
                        value[i]
                        if hasattr(value, "__len__") and len(value) == self.num_envs
                        else value
                    )
                    out[i][key] = v.item() if isinstance(v, np.generic) else v
        return out

    def _index_obs(self, obs: Any, i: int) -> Any:
        if isinstance(obs, dict):
            return {k: v[i] for k, v in obs.items()}
        return obs[i]

    def reset(self) -> Any:
        seeds = [s for s in self._seeds]
        seed = seeds if any(s is not None for s in seeds) else None
        obs, infos = self.venv.reset(seed=seed, options=self._options[0] or None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = self._split_infos(infos)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> Any:
        obs, rewards, terminated, truncated, infos = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        info_list = self._split_infos(infos)
        if self.autoreset_mode == gym.vector.AutoresetMode.SAME_STEP:
            final_obs = infos.get("final_obs")
            for i in np.flatnonzero(dones):
                final_info = info_list[i].pop("final_info", None) or {}
                info = {**final_info}
                info["terminal_observation"] = self._index_obs(final_obs, i)
                info_list[i] = info
        elif dones.any():  # DISABLED: reset the finished sub-envs ourselves
            for i in np.flatnonzero(dones):
                info_list[i]["terminal_observation"] = self._index_obs(obs, i)
            obs, reset_infos = self.venv.reset(options={"reset_mask": dones})
        for i in np.flatnonzero(dones):
            info_list[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, np.asarray(rewards, dtype=np.float32), dones, info_list

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        value = self.venv.get_attr(attr_name) if hasattr(self.venv, "get_attr") else None
        if isinstance(value, (list, tuple)) and len(value) == self.num_envs:
            return [value[i] for i in self._get_indices(indices)]
        value = getattr(self.venv, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        if hasattr(self.venv, "set_attr"):
            self.venv.set_attr(attr_name, value)
        else:
            setattr(self.venv, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        result = self.venv.call(method_name, *args, **kwargs)
        if isinstance(result, (list, tuple)) and len(result) == self.num_envs:
            return [result[i] for i in self._get_indices(indices)]
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> list[np.ndarray | None]:
        frames = self.venv.render()
        if frames is None:
            return [None] * self.num_envs
        return list(frames)
