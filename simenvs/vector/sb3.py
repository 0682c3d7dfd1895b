"""``BatchedVecEnv``: a ``BatchedVectorEnv`` seen through Stable-Baselines3's ``VecEnv`` API.

SB3 wants autoreset within the step, the last observation of a finished episode in
``info["terminal_observation"]``, ``info["TimeLimit.truncated"]``, float32 rewards and one info
dict per env. The batched env runs with ``autoreset_mode=SameStep`` underneath. Building N info
dicts every step costs more than a whole batched step of small sims, so by default only finished
episodes get their full info (what SB3's algorithms, ``VecMonitor`` and ``EvalCallback`` read);
``step_infos=True`` fills every env's dict every step.

``env_method``/``get_attr``/``set_attr`` reach the task objects of the chosen sims, so
``venv.env_method("set_randomization", spec)`` changes the distribution of every sim from its
next episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env import VecEnv

from simenvs.vector.batched import BatchedVectorEnv

__all__ = ["BatchedVecEnv", "make_batched_vec_env"]


class BatchedVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a natively batched simenvs env (see the module docstring)."""

    def __init__(self, venv: BatchedVectorEnv, step_infos: bool = False):
        if not isinstance(venv, BatchedVectorEnv):
            raise TypeError(f"BatchedVecEnv wraps a BatchedVectorEnv, got {type(venv).__name__}")
        if venv.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                "BatchedVecEnv needs a BatchedVectorEnv built with autoreset_mode='SameStep' "
                "(make_batched_vec_env does this)"
            )
        self.venv = venv
        self.step_infos = bool(step_infos)
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self.render_mode = venv.render_mode
        self._actions: np.ndarray | None = None

    # ---- core API -----------------------------------------------------------------------
    def reset(self) -> Any:
        seeds = list(self._seeds)
        seed = seeds if any(s is not None for s in seeds) else None
        opts = self._options
        options = opts[0] if opts and all(o == opts[0] for o in opts) else None
        if opts and options is None:
            raise ValueError("BatchedVecEnv.set_options: give one options dict for all envs")
        obs, infos = self.venv.reset(seed=seed, options=dict(options) if options else None)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = _to_list(infos, self.num_envs, np.ones(self.num_envs, dtype=bool))
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> Any:
        obs, rewards, term, trunc, infos = self.venv.step(self._actions)
        dones = term | trunc
        rows = np.ones(self.num_envs, dtype=bool) if self.step_infos else dones
        info_list: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if rows.any():
            final_info = infos.get("final_info")
            final_obs = infos.get("final_obs")
            filled = _to_list(infos, self.num_envs, rows & ~dones)
            finals = (
                _to_list(final_info, self.num_envs, dones)
                if final_info is not None
                else [{}] * self.num_envs
            )
            for i in np.flatnonzero(rows).tolist():
                if dones[i]:
                    info = dict(finals[i])
                    info["terminal_observation"] = final_obs[i]
                    info["TimeLimit.truncated"] = bool(trunc[i] and not term[i])
                    info_list[i] = info
                else:
                    info_list[i] = filled[i]
        return obs, rewards.astype(np.float32), dones, info_list

    def close(self) -> None:
        self.venv.close()

    # ---- sub-env access -----------------------------------------------------------------
    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        ids = list(self._get_indices(indices))
        self.venv.sync_tasks(ids)
        return [getattr(self.venv.envs[i], attr_name) for i in ids]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        for i in self._get_indices(indices):
            setattr(self.venv.envs[i], attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any) -> list:
        return self.venv.call_at(list(self._get_indices(indices)), method_name, *args, **kwargs)

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        return [isinstance(self.venv.envs[i], wrapper_class) for i in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.venv.render_mode != "rgb_array":
            return [None] * self.num_envs
        return list(self.venv.render())


def _to_list(infos: dict[str, Any], n: int, rows: np.ndarray) -> list[dict[str, Any]]:
    """Vector infos (dict of arrays with ``_key`` masks) -> per-env dicts for ``rows``."""
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    if not rows.any():
        return out
    for key, val in infos.items():
        if key.startswith("_") or key in ("final_obs", "final_info"):
            continue
        mask = infos.get("_" + key)
        sel = rows if mask is None else rows & mask
        if isinstance(val, dict):
            sub = _to_list(val, n, sel)
            for i in np.flatnonzero(sel).tolist():
                out[i][key] = sub[i]
            continue
        for i in np.flatnonzero(sel).tolist():
            v = val[i]
            out[i][key] = v.item() if isinstance(v, np.generic) else v
    return out


def make_batched_vec_env(
    env: Any, n_envs: int, *, step_infos: bool = False, **kwargs: Any
) -> BatchedVecEnv:
    """``BatchedVecEnv(BatchedVectorEnv(env, n_envs, autoreset_mode="SameStep", **kwargs))``.

    ``env``: an env id, ``SimEnv`` class or factory; ``kwargs`` are ``BatchedVectorEnv``'s
    (``nthread``...) and the env's own. Wrap with ``VecMonitor`` for episode statistics.
    """
    venv = BatchedVectorEnv(env, n_envs, autoreset_mode=AutoresetMode.SAME_STEP, **kwargs)
    return BatchedVecEnv(venv, step_infos=step_infos)
