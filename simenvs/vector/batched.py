"""``BatchedVectorEnv``: N sims of one simenvs task in one process, physics on ``mujoco.batch``.

Every sim keeps its own task object, built like the single env, for what is per episode:
seeded parameter sampling (``BoundSpec``), applying them to the task's model, ``reset_task``,
rendering. Per step:

- generic path (any task; always for image observations): the task's own ``apply_action``,
  physics, ``evaluate`` and ``_get_obs`` run per sim on its own ``MjData`` (no batch: its
  Python dominates, and a batch's state copies cost more than its threads save, see
  ``simenvs.vector.physics``).
- fast path (state observations, tasks with a ``BatchOps``, see ``simenvs.vector.ops``): the
  same logic over ``(num_envs, ...)`` arrays bound to one ``mujoco.batch.Batch``, whose C
  thread pool steps all sims; no per-sim Python per step.
  With ops that allow it (``steps_finished``), a step with NEXT_STEP autoresets steps every
  sim and then resets the finished ones (slices instead of index arrays through the ops);
  only a reset runs per-sim Python (the task's own ``reset``).

Either way the observations equal a loop of single envs with the same seeds, step for step
(``tests/test_vector.py``). Per-sim model fields follow each task's model (``model_sync``).
Autoreset follows ``autoreset_mode`` (default NEXT_STEP, as the task metadata declares;
SAME_STEP and DISABLED as in Gymnasium's ``SyncVectorEnv``). A sim whose physics diverges (or
that MuJoCo rejects) is truncated with ``info["physics_error"]``, and reset like any finished
sim; the others continue.
"""

from __future__ import annotations

import copy
import operator
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, concatenate, create_empty_array

from simenvs.core.env import _BAD, SimEnv
from simenvs.vector.ops import BatchOps, NormalBuffer, find_ops
from simenvs.vector.physics import DirectPhysics, SingleBatch
from simenvs.vector.render import SharedContextRenderer, SharedGL
from simenvs.vector.step_kernels import clip_actions, step_results

__all__ = ["BatchedVectorEnv", "make_task_factory", "TaskFactory"]

_BAD_NAMES = [str(mujoco.mjtWarning(int(w)).name) for w in _BAD]
_BAD_LO, _BAD_HI = min(_BAD), max(_BAD) + 1  # the warnings counted (physics.warnings' slice)


class TaskFactory:
    """Builds one task object: from an env id (its registered entry point and kwargs), a
    ``SimEnv`` subclass, or any callable returning one. Picklable when ``env`` is an id or a
    top-level class."""

    def __init__(self, env: str | type | Callable[..., Any], env_kwargs: Mapping[str, Any]):
        self.env = env
        self.env_kwargs = dict(env_kwargs)
        self.env_id: str | None = None
        if isinstance(env, str):
            import simenvs  # noqa: F401  (registers the simenvs ids)

            spec = gym.spec(env)
            entry = spec.entry_point
            if entry is None:
                raise ValueError(f"{env} has no entry point to build single tasks from")
            self.env_id = spec.id
            self._creator = (
                gym.envs.registration.load_env_creator(entry) if isinstance(entry, str) else entry
            )
            kwargs = dict(spec.kwargs or {})
            if spec.max_episode_steps is not None:
                kwargs.setdefault("max_episode_steps", spec.max_episode_steps)
            self.env_kwargs = {**kwargs, **self.env_kwargs}
        elif callable(env):
            self._creator = env
        else:
            raise TypeError(f"env must be an env id, a SimEnv class or a callable, got {env!r}")

    def __call__(self) -> SimEnv:
        task = self._creator(**self.env_kwargs)
        task = getattr(task, "unwrapped", task)
        if not isinstance(task, SimEnv):
            raise TypeError(
                f"BatchedVectorEnv needs a simenvs SimEnv task; {self.env!r} built "
                f"{type(task).__name__}. Use vectorization_mode='sync' or 'async' for it."
            )
        return task


def make_task_factory(env: Any, env_kwargs: Mapping[str, Any] | None = None) -> TaskFactory:
    return TaskFactory(env, env_kwargs or {})


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class BatchedVectorEnv(VectorEnv):
    """N simulations of one task in one process (see the module docstring).

    Args:
        env: env id (``"simenvs/DroneRace-v0"``), ``SimEnv`` subclass, or callable.
        num_envs: number of simulations.
        nthread: threads of the fast path's batch (None: the cores this process may use, at
            most ``num_envs``); the generic path steps in the calling thread.
        autoreset_mode: ``"NextStep"`` (default), ``"SameStep"`` or ``"Disabled"``.
        fast_path: use the task's vectorized ``BatchOps`` when it has one and obs are state.
        model_mode: how per-sim models are held: "auto" | "expand" | "models" (model_sync).
        model_check: "first" | "always": when to compare all model fields (model_sync).
        copy: return copies of the observation buffer (False: the buffer, overwritten next step).
        **env_kwargs: passed to every task (``obs_mode``, ``randomization``, task options...).
    """

    def __init__(
        self,
        env: str | type | Callable[..., Any],
        num_envs: int = 1,
        *,
        nthread: int | None = None,
        autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
        fast_path: bool = True,
        model_mode: str = "auto",
        model_check: str = "first",
        copy: bool = True,
        **env_kwargs: Any,
    ):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise TypeError(f"num_envs must be an int, got {num_envs!r}")
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            allowed = [m.value for m in AutoresetMode]
            raise ValueError(
                f"unknown autoreset_mode {autoreset_mode!r}; allowed: {allowed}"
            ) from None
        if nthread is None:
            nthread = min(int(num_envs), _available_cores())
        if int(nthread) < 1:
            raise ValueError(f"nthread must be >= 1, got {nthread!r}")
        self.factory = TaskFactory(env, env_kwargs)
        self.num_envs = int(num_envs)
        self.envs: list[SimEnv] = [self.factory() for _ in range(self.num_envs)]
        e0 = self.envs[0]
        for i, e in enumerate(self.envs[1:], 1):
            if e.observation_space != e0.observation_space or e.action_space != e0.action_space:
                raise RuntimeError(f"task {i} has other observation/action spaces than task 0")
            if e.frame_skip != e0.frame_skip:
                raise RuntimeError(f"task {i} has frame_skip {e.frame_skip} != {e0.frame_skip}")
        self.copy = bool(copy)
        self.single_observation_space = e0.observation_space
        self.single_action_space = e0.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.metadata = {**e0.metadata, "autoreset_mode": self.autoreset_mode}
        self.render_mode = e0.render_mode
        self.frame_skip = int(e0.frame_skip)
        self.dt = float(e0.dt)
        self.max_episode_steps = int(e0.max_episode_steps)
        task_cls = type(e0)
        ops_cls = find_ops(task_cls) if fast_path and e0.obs_mode == "state" else None
        if task_cls.before_substep is not SimEnv.before_substep:
            ops_cls = None
        rebuilds = task_cls.needs_rebuild is not SimEnv.needs_rebuild
        if rebuilds:
            ops_cls = None
        if ops_cls is None:  # per-sim Python dominates: see simenvs.vector.physics
            self.physics: SingleBatch | DirectPhysics = DirectPhysics(self.envs)
        else:
            self.physics = SingleBatch(
                copy_model(e0.model), self.num_envs, int(nthread), False, e0.registry,
                model_mode, model_check,
            )  # fmt: skip
        self.batch = self.physics.batch
        self.nthread = self.physics.nthread
        self.persistent = self.physics.persistent
        self.noise = NormalBuffer(self.envs)
        if self.batch is not None:
            self._qpos = self.batch.bind("qpos")
            self._qvel = self.batch.bind("qvel")
        n, a_shape = self.num_envs, self.single_action_space.shape
        self._all = np.arange(n)
        self._steps = np.zeros(n, dtype=np.int64)
        self._last_action = np.zeros((n, *a_shape))
        self._autoreset = np.zeros(n, dtype=bool)
        self._warn0 = np.zeros(n, dtype=np.int64)
        self._nobody = np.zeros(n, dtype=bool)  # an all-False mask (none finished, failed)
        self._latency = np.zeros(n, dtype=np.int64)
        lat = [p for p in e0.registry if p.name == "dynamics.action_latency"]
        max_lat = int(np.max(lat[0].bounds()[1])) if lat else 0
        self._hist = np.zeros((n, max_lat + 1, *a_shape))  # ring of commanded actions
        self._dsteps = np.zeros(n, dtype=np.int64)  # distractor steps applied (fast path)
        self._neutral = np.zeros((n, *a_shape))
        self._noise_std = np.zeros(n)
        self._noise_scale: np.ndarray | None = None
        self._obs = create_empty_array(self.single_observation_space, n=n, fn=np.zeros)
        self._a_low = np.asarray(self.single_action_space.low)
        self._a_high = np.asarray(self.single_action_space.high)
        self._a_lo = np.ascontiguousarray(self._a_low, dtype=np.float64).ravel()  # clip_actions'
        self._a_hi = np.ascontiguousarray(self._a_high, dtype=np.float64).ravel()
        self._env_obs: list[Any] = [None] * n
        self._rewards = np.zeros(n)
        self._terminations = np.zeros(n, dtype=bool)
        self._truncations = np.zeros(n, dtype=bool)
        self._needs_reset = True
        self._gl: SharedGL | None = None
        self._finishing: np.ndarray | None = None  # see _advance_fast
        self._any_latency = self._any_state_noise = False  # any sim this episode (fast path)
        self.ops: BatchOps | None = ops_cls(self) if ops_cls is not None else None

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sims (or ``options["reset_mask"]``'s).

        ``seed``: None, an int (sim i gets ``seed + i``) or one per sim. ``options`` go to every
        task's ``reset``; ``options["params"]`` may also be a list with one dict per sim.
        """
        n = self.num_envs
        if seed is None:
            seeds: list[int | None] = [None] * n
        elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
            if len(seeds) != n:
                raise ValueError(f"seed list must have num_envs={n} entries, got {len(seeds)}")
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (n,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({n},) with a True "
                    f"value, got {mask!r}"
                )
            if self._needs_reset:
                raise RuntimeError("reset every sim (no reset_mask) before a masked reset")
            ids = np.flatnonzero(mask)
        else:
            ids = self._all
        per_sim = _per_sim_options(options, n)
        if self._gl is None and self.envs[0].obs_mode != "state":
            self._share_renderers()
        obs, infos = self._reset_ids(ids, [seeds[i] for i in ids], [per_sim[i] for i in ids])
        self._rewards[ids] = 0.0
        self._terminations[ids] = False
        self._truncations[ids] = False
        self._autoreset[ids] = False
        self._needs_reset = False
        for i, o in zip(ids.tolist(), obs):
            self._set_obs(i, o)
        return self._out_obs(), infos

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        a = self._check_actions(actions)
        mode = self.autoreset_mode
        infos: dict[str, Any] = {}
        reset_ids = np.zeros(0, dtype=np.int64)
        if mode == AutoresetMode.NEXT_STEP:
            if self._autoreset.any():
                reset_ids = np.flatnonzero(self._autoreset)
        elif mode == AutoresetMode.DISABLED and self._autoreset.any():
            raise RuntimeError(
                f"sims {np.flatnonzero(self._autoreset).tolist()} finished their episode: with "
                "autoreset_mode=Disabled, reset them (options={'reset_mask': ...}) before stepping"
            )
        ops = self.ops
        if reset_ids.size and ops is not None and ops.steps_finished:
            # step every sim (slices, not index arrays, through the ops), then reset the
            # finished ones: the reset overwrites their state and bookkeeping, they draw no
            # noise in between, and their step results are dropped (see _advance_fast)
            infos = self._advance_fast(slice(None), self._all, a, finished=self._autoreset)
            k = len(reset_ids)
            obs_r, info_r = self._reset_ids(reset_ids, [None] * k, [None] * k, vector_info=False)
        else:
            if reset_ids.size:
                active = np.flatnonzero(~self._autoreset)
                idx: slice | np.ndarray = active
                self._rewards[:] = 0.0
                self._terminations[:] = False
                self._truncations[:] = False
                k = len(reset_ids)
                obs_r, info_r = self._reset_ids(
                    reset_ids, [None] * k, [None] * k, vector_info=False
                )
            else:
                active, idx = self._all, slice(None)
            if active.size:
                if ops is not None:
                    infos = self._advance_fast(idx, active, a)
                else:
                    infos = self._advance_generic(active, a)
        if reset_ids.size:
            ids_l = reset_ids.tolist()
            for i, o in zip(ids_l, obs_r):
                self._set_obs(i, o)
            infos = self._add_reset_infos(infos, info_r, ids_l)
        if mode == AutoresetMode.SAME_STEP:
            done = np.flatnonzero(self._terminations | self._truncations)
            if done.size:
                finals = {"final_obs": [self._get_obs_i(i) for i in done.tolist()]}
                final_infos = _split_infos(infos, done)
                k = len(done)
                obs_r, info_r = self._reset_ids(done, [None] * k, [None] * k, vector_info=False)
                for key in list(infos):  # as SyncVectorEnv: step info only in final_info
                    if key.startswith("_") and not isinstance(infos.get(key[1:]), dict):
                        infos[key][done] = False
                        if not infos[key].any():
                            del infos[key], infos[key[1:]]
                for j, i in enumerate(done.tolist()):
                    infos = self._add_info(
                        infos,
                        {"final_obs": finals["final_obs"][j], "final_info": final_infos[j]},
                        i,
                    )
                    self._set_obs(i, obs_r[j])
                    infos = self._add_info(infos, info_r[j], i)
        self._autoreset = self._terminations | self._truncations
        return (
            self._out_obs(),
            self._rewards.copy(),
            self._terminations.copy(),
            self._truncations.copy(),
            infos,
        )

    def render(self) -> tuple[Any, ...] | None:
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        self.sync_tasks(visuals=True)
        self._share_renderers()
        return tuple(e.render() for e in self.envs)

    def close_extras(self, **kwargs: Any) -> None:
        for e in self.envs:
            e.close()
        if self._gl is not None:
            self._gl.close()
            self._gl = None

    # ---- sub-env access (as SyncVectorEnv) ----------------------------------------------
    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Call ``name`` on every task (or read it, if not callable). Tasks are synced from the
        batch first and their state is copied back afterwards, so a method may read and write
        its ``MjData``."""
        self.sync_tasks()
        out = []
        for e in self.envs:
            fn = getattr(e, name)
            out.append(fn(*args, **kwargs) if callable(fn) else fn)
        self._push_states(self._all)
        return tuple(out)

    # ---- executor API: step or reset chosen sims, no autoreset --------------------------
    def reset_subset(
        self,
        ids: Sequence[int],
        seeds: Sequence[int | None] | None = None,
        options: Sequence[dict | None] | None = None,
    ) -> tuple[list[Any], list[dict[str, Any]]]:
        """Reset sims ``ids`` (each with its own seed and options); per-sim obs and infos."""
        ids = np.asarray(list(ids), dtype=np.int64)
        k = len(ids)
        obs, infos = self._reset_ids(
            ids, list(seeds) if seeds is not None else [None] * k,
            list(options) if options is not None else [None] * k, vector_info=False,
        )  # fmt: skip
        for i, o in zip(ids.tolist(), obs):
            self._set_obs(i, o)
        self._autoreset[ids] = False
        self._needs_reset = False
        return obs, infos

    def step_subset(self, ids: Sequence[int], actions: Any) -> tuple[Any, ...]:
        """Step only sims ``ids`` (sorted) with ``actions`` (one row each); the others stand
        still. No autoreset. Returns (obs rows, rewards, terminations, truncations, infos),
        infos in vector form over all sims (masks False outside ``ids``)."""
        ids = np.asarray(list(ids), dtype=np.int64)
        if ids.size == 0:
            raise ValueError("step_subset needs at least one sim id")
        if np.any(np.diff(ids) <= 0) or ids[0] < 0 or ids[-1] >= self.num_envs:
            raise ValueError(f"ids must be sorted, unique and in [0, {self.num_envs}): {ids}")
        full = self._last_action.copy()
        full[ids] = np.asarray(actions, dtype=np.float64).reshape(len(ids), *full.shape[1:])
        a = self._check_actions(full)
        self._rewards[ids] = 0.0
        self._terminations[ids] = False
        self._truncations[ids] = False
        if self.ops is not None:
            idx: slice | np.ndarray = slice(None) if len(ids) == self.num_envs else ids
            infos = self._advance_fast(idx, ids, a)
        else:
            infos = self._advance_generic(ids, a)
        self._autoreset[ids] = self._terminations[ids] | self._truncations[ids]
        obs = [self._get_obs_i(i) for i in ids.tolist()]
        return (
            obs, self._rewards[ids].copy(), self._terminations[ids].copy(),
            self._truncations[ids].copy(), infos,
        )  # fmt: skip

    def call_at(self, indices: Sequence[int], name: str, *args: Any, **kwargs: Any) -> list[Any]:
        """``call`` on the tasks ``indices`` only."""
        ids = np.asarray(list(indices), dtype=np.int64)
        self.sync_tasks(ids)
        out = []
        for i in ids.tolist():
            fn = getattr(self.envs[i], name)
            out.append(fn(*args, **kwargs) if callable(fn) else fn)
        self._push_states(ids)
        return out

    def get_attr(self, name: str) -> tuple[Any, ...]:
        self.sync_tasks()
        return tuple(getattr(e, name) for e in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        """Set ``name`` on every task: one value for all, or a list/tuple with one per task."""
        if not isinstance(values, (list, tuple)):
            values = [values] * self.num_envs
        if len(values) != self.num_envs:
            raise ValueError(f"set_attr needs {self.num_envs} values, got {len(values)}")
        for e, v in zip(self.envs, values):
            setattr(e, name, v)

    def set_randomization(self, spec: Any) -> None:
        """Swap every task's randomization spec; it applies from each sim's next episode."""
        for e in self.envs:
            e.set_randomization(spec)

    @property
    def params(self) -> list[dict[str, Any]]:
        """Each sim's current episode parameters."""
        return [e.params for e in self.envs]

    def sync_tasks(
        self, ids: Sequence[int] | np.ndarray | None = None, visuals: bool = False
    ) -> None:
        """Bring task objects up to date with the batch (fast path: data and bookkeeping).

        ``visuals``: also move the flying distractors to where the single env has them (the
        fast path leaves them in place: they never touch the physics); for rendering."""
        if self.ops is None or self._needs_reset:
            return
        ids = self._all if ids is None else np.asarray(ids)
        self.noise.rewind(ids)
        for i in ids.tolist():
            e = self.envs[i]
            self.physics.get_data(i, e.data)
            e.step_count = int(self._steps[i])
            e.last_action = self._last_action[i].copy()
            self.ops.sync_task(i)
            d = e._distractors
            if visuals and len(d):
                k = int(self._steps[i] - self._dsteps[i])
                for _ in range(k):  # SimEnv.step's lazy accumulation, bit for bit
                    e._distractor_time += e._dt
                self._dsteps[i] = self._steps[i]
                d._write(e.data)
            mujoco.mj_forward(e.model, e.data)

    # ---- resets -------------------------------------------------------------------------
    def _reset_ids(
        self,
        ids: np.ndarray,
        seeds: Sequence[int | None],
        options: Sequence[dict | None],
        vector_info: bool = True,
    ) -> tuple[list[Any], Any]:
        """Reset tasks ``ids`` with their own ``reset`` and load them into the batch."""
        self.noise.rewind(ids)
        obs, infos = [], []
        for i, s, o in zip(ids.tolist(), seeds, options):
            ob, info = self.envs[i].reset(seed=s, options=o)
            obs.append(ob)
            infos.append(info)
        self.physics.after_reset(ids, _Models(self.envs))
        self._push_states(ids, reset=True)
        self._steps[ids] = 0
        self._dsteps[ids] = 0
        fast = self.ops is not None
        for i in ids.tolist():
            e = self.envs[i]
            params = e.params
            self._last_action[i] = e.last_action
            lat = int(params.get("dynamics.action_latency", 0))
            self._latency[i] = lat
            if lat:  # read only while the latency queue fills
                self._neutral[i] = e.neutral_action()
            std = float(params.get("sensor.state.noise_std", 0.0))
            self._noise_std[i] = std
            if fast and std:  # read only for noisy sims
                if self._noise_scale is None:
                    shape = self.single_observation_space.shape
                    self._noise_scale = np.ones((self.num_envs, *shape))
                self._noise_scale[i] = e.state_noise_scale()
        self._any_latency = bool(self._latency.any())
        self._any_state_noise = bool(self._noise_std.any())
        if self.ops is not None:
            self.ops.on_reset(ids)
        if not vector_info:
            return obs, infos
        return obs, self._add_reset_infos({}, infos, ids.tolist())

    def _push_states(self, ids: np.ndarray, reset: bool = False) -> None:
        """Copy tasks' MjData state into the batch (after a reset, or a ``call`` that may have
        changed it: then only changed rows are written)."""
        ids = np.asarray(ids, dtype=np.int64)
        # derived fields (xmat...) are recomputed by the next step; refresh them now only when
        # something reads them before it (the generic path, or ops that say they do)
        derived = self.ops is None or self.ops.needs_derived
        ran = self.physics.load(ids, self.envs, reset, forward=derived or not reset)
        if reset:  # warnings cleared by the load, raised only by a forward it ran
            self._warn0[ids] = self.physics.warnings(ids) if ran else 0

    # ---- stepping -----------------------------------------------------------------------
    def _check_actions(self, actions: Any) -> np.ndarray:
        n, shape = self.num_envs, self.single_action_space.shape
        try:
            a = np.asarray(actions, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"actions must be numeric with shape {(n, *shape)}") from None
        if a.shape != (n, *shape):
            if a.size == n * int(np.prod(shape)):
                a = a.reshape(n, *shape)
            else:
                raise ValueError(f"actions must have shape {(n, *shape)}, got {a.shape}")
        out = np.empty(a.shape)  # a new array: never the caller's
        i = clip_actions(a.reshape(n, -1), self._a_lo, self._a_hi, out.reshape(n, -1))
        if i >= 0:
            raise ValueError(f"action of env {i} has non-finite values: {a[i].tolist()}")
        return out

    def _advance_generic(self, active: np.ndarray, a: np.ndarray) -> dict[str, Any]:
        """One control step of the tasks ``active``, through their own hooks (SimEnv.step)."""
        envs, phys = self.envs, self.physics
        ids = active.tolist()
        rewards, terms, truncs, infos = [], [], [], []
        for i in ids:  # one sim at a time: its model and data stay in cache
            e = envs[i]
            ai = a[i]
            e._queue.append(ai)
            e.apply_action(e._queue.popleft())
            fatal = phys.advance(i)
            e.last_action = ai
            e.step_count += 1
            e._distractor_time += e._dt  # as SimEnv.step: moved lazily, at render
            error = e._check_physics()
            if fatal is not None:
                error = f"MuJoCo error: {fatal} at step {e.step_count}"
            if error is not None:
                ob = e._get_obs()
                info = {"physics_error": error, "is_success": False}
                reward, term, trunc = 0.0, False, True
            else:
                reward, term, info = e.evaluate()
                trunc = e.step_count >= e.max_episode_steps and not term
                if trunc:
                    info["TimeLimit.truncated"] = True
                info.setdefault("is_success", False)
                ob = e._get_obs()
            self._set_obs(i, ob)
            rewards.append(reward)
            terms.append(term)
            truncs.append(trunc)
            infos.append(info)
        self._steps[active] = [envs[i].step_count for i in ids]
        self._last_action[active] = a[active]
        self._rewards[active] = rewards
        self._terminations[active] = terms
        self._truncations[active] = truncs
        return self._add_infos(ids, infos)

    def _add_infos(self, ids: list[int], infos: list[dict[str, Any]]) -> dict[str, Any]:
        """Fresh vector infos of sims ``ids``, as ``_add_info`` sim by sim would build them: a key
        whose values are all Python bools, ints or floats of one type is one array write (a
        step's usual info); any other key goes through ``_add_info`` value by value."""
        n = self.num_envs
        out: dict[str, Any] = {}
        for key in dict.fromkeys(k for info in infos for k in info):
            idx, vals = [], []
            for i, info in zip(ids, infos):
                if key in info:
                    idx.append(i)
                    vals.append(info[key])
            tv = type(vals[0])
            if (tv is bool or tv is int or tv is float) and all(type(v) is tv for v in vals):
                array = out[key] = np.zeros(n, dtype=tv)
                array[idx] = vals
                mask = out["_" + key] = np.zeros(n, dtype=np.bool_)
                mask[idx] = True
            else:
                for i, v in zip(idx, vals):
                    self._add_info(out, {key: v}, i)
        return out

    def _advance_fast(
        self,
        idx: slice | np.ndarray,
        active: np.ndarray,
        a: np.ndarray,
        finished: np.ndarray | None = None,
    ) -> dict:
        """One control step of the sims ``idx`` through the task's vectorized ops.

        ``finished`` (with ``idx`` = every sim): a mask of sims whose episode ended at the last
        step and that are reset right after this call. They are stepped with the others (so
        every array access is a slice), draw no noise (``self._finishing`` tells the ops), and
        get zero reward, no termination and no step info: the reset then replaces their state,
        bookkeeping and observation.
        """
        ops = self.ops
        assert ops is not None
        full = isinstance(idx, slice)
        steps = self._steps[idx]
        a_idx = a[idx] if not full else a
        lat = self._latency[idx] if self._any_latency else None
        if lat is not None and lat.any():
            slot = steps % self._hist.shape[1]
            self._hist[active, slot] = a_idx
            applied = self._hist[active, (steps - lat) % self._hist.shape[1]]
            early = steps < lat
            if early.any():
                applied[early] = self._neutral[active[early]]
        else:
            applied = a_idx
        self._finishing = finished
        try:
            ops.apply_actions(idx, applied)
            failed = self.physics.step(None if full else active, self.frame_skip)
            self._steps[idx] += 1
            self._last_action[idx] = a_idx
            with np.errstate(all="ignore"):
                reward, term, info = ops.evaluate(idx)
                obs = ops.state_obs(idx)
            std = self._noise_std[idx] if self._any_state_noise else None
            if std is not None and std.any():
                noisy = std > 0.0
                if finished is not None:
                    noisy &= ~finished
                if noisy.any():
                    rows = active[noisy]
                    z = self.noise.take(rows, obs.shape[1])
                    obs[noisy] = (
                        obs[noisy] + z * self._noise_std[rows, None] * self._noise_scale[rows]
                    ).astype(np.float32)
        finally:
            self._finishing = None
        self._obs[idx] = obs
        n = self.num_envs
        k = len(active)
        diverged, error = np.empty(k, dtype=bool), np.empty(k, dtype=bool)
        ok, tl = np.empty(k, dtype=bool), np.empty(k, dtype=bool)
        fail = self._nobody
        if failed.size:  # (MuJoCo errors)
            fail = np.zeros(n, dtype=bool)
            fail[failed] = True
        any_error, any_tl = step_results(
            active, self.batch.warning, _BAD_LO, _BAD_HI, self._warn0, self._qpos, self._qvel,
            fail, self._steps, self.max_episode_steps, np.asarray(term, dtype=bool),
            np.asarray(reward, dtype=np.float64), self._nobody if finished is None
            else finished, self._rewards, self._terminations, self._truncations, diverged,
            error, ok, tl,
        )  # fmt: skip
        infos: dict[str, Any] = {}
        # one block of masks, a row per key: each key owns its mask (_add_info edits them)
        if finished is not None:
            if not finished.all():  # (else no sim stepped)
                masks = np.empty((len(info), n), dtype=bool)
                masks[:] = ok
                fin = np.flatnonzero(finished)
                own = ops.fresh_info  # the info arrays are the env's to edit
                for (key, val), mask in zip(info.items(), masks):
                    val = np.asarray(val) if own else np.array(val)
                    val[fin] = None if val.dtype == object else 0
                    infos[key], infos["_" + key] = val, mask
        elif full:
            masks = np.empty((len(info), n), dtype=bool)
            masks[:] = ok
            for (key, val), mask in zip(info.items(), masks):
                infos[key], infos["_" + key] = np.asarray(val), mask
        else:
            mask = _scatter(ok, active, n)
            for key, val in info.items():
                infos[key] = _scatter(np.asarray(val), active, n)
                infos["_" + key] = mask.copy()
        if any_error:
            msgs = np.full(n, None, dtype=object)
            emask = np.zeros(n, dtype=bool)
            for j in np.flatnonzero(error).tolist():
                i = int(active[j])
                msgs[i] = self._error_message(i, j, diverged, failed)
                emask[i] = True
            infos["physics_error"], infos["_physics_error"] = msgs, emask
            succ = infos.setdefault("is_success", np.zeros(n, dtype=bool))
            succ[emask] = False
            infos["_is_success"] = infos.get("_is_success", np.zeros(n, dtype=bool)) | emask
        if any_tl:
            m = tl if full else _scatter(tl, active, n)
            infos["TimeLimit.truncated"], infos["_TimeLimit.truncated"] = m.copy(), m
        return infos

    def _error_message(self, i: int, j: int, diverged, failed) -> str:
        k = int(self._steps[i])
        if i in set(np.asarray(failed).tolist()):
            return f"MuJoCo error: {self.batch.error(i)} at step {k}"
        if diverged[j]:
            w = self.batch.warning[i]
            names = [name for name, b in zip(_BAD_NAMES, _BAD) if w[b, 1]]
            return f"physics diverged ({', '.join(names)}) at step {k}"
        return f"non-finite state at step {k}"

    def _add_info(self, vector_infos: dict[str, Any], env_info: dict[str, Any], env_num: int):
        """Gymnasium's info batching (``VectorEnv._add_info``: same arrays, dtypes and masks),
        except that values whose shape differs between sims (a per-episode map, a
        variable-length list) go into an object array instead of failing. Written out here
        because Gymnasium's allocates a mask per key per call: a reset's info (the episode's
        ~60 params) cost ~0.25 ms per sim that way."""
        n = self.num_envs
        for key, value in env_info.items():
            if key == "final_obs":
                array = vector_infos.get(key)
                if array is None:
                    array = np.full(n, None, dtype=object)
                array[env_num] = value
            elif isinstance(value, dict):
                sub = vector_infos.get(key)
                array = None
                if sub is None and len(value) > 8:  # a reset's params: allocated in blocks
                    array = _InfoBlocks.new(self, [value], [env_num])
                if array is None:
                    array = self._add_info({} if sub is None else sub, value, env_num)
            else:
                array = vector_infos.get(key)
                if array is None:
                    tv = type(value)
                    if tv is float or tv is int or tv is bool or issubclass(tv, np.number):
                        array = np.zeros(n, dtype=tv)
                    elif isinstance(value, np.ndarray):
                        array = np.zeros((n, *value.shape), dtype=value.dtype)
                    else:
                        array = np.full(n, None, dtype=object)
                try:
                    array[env_num] = value
                except ValueError:  # shape (or kind) differs from other sims': object array
                    mask = vector_infos.get("_" + key)
                    obj = np.full(n, None, dtype=object)
                    if mask is not None:
                        for j in np.flatnonzero(mask).tolist():
                            obj[j] = array[j]
                    obj[env_num] = value
                    array = obj
            vector_infos[key] = array
            mask = vector_infos.get("_" + key)
            if mask is None:
                mask = vector_infos["_" + key] = np.zeros(n, dtype=np.bool_)
            mask[env_num] = True
        return vector_infos

    def _add_reset_infos(
        self, vector_infos: dict[str, Any], infos: list[dict[str, Any]], ids: list[int]
    ) -> dict[str, Any]:
        """``_add_info`` of several sims' reset infos, one after another, with the same result;
        when they share their keys, a reset's params (many entries) go into one set of blocks
        for all of them (``_InfoBlocks``)."""
        keys = tuple(infos[0])
        if len(infos) > 1 and any(tuple(inf) != keys for inf in infos[1:]):
            for i, inf in zip(ids, infos):
                vector_infos = self._add_info(vector_infos, inf, i)
            return vector_infos
        for key in keys:  # key by key: the same arrays, and keys inserted in the same order
            vals = [inf[key] for inf in infos]
            v0 = vals[0]
            if (
                vector_infos.get(key) is None and key != "final_obs" and isinstance(v0, dict)
                and len(v0) > 8 and all(type(v) is dict for v in vals)
            ):  # fmt: skip
                array = _InfoBlocks.new(self, vals, ids)
                if array is not None:
                    vector_infos[key] = array
                    mask = vector_infos.get("_" + key)
                    if mask is None:
                        mask = vector_infos["_" + key] = np.zeros(self.num_envs, dtype=np.bool_)
                    mask[ids] = True
                    continue
            for i, v in zip(ids, vals):
                vector_infos = self._add_info(vector_infos, {key: v}, i)
        return vector_infos

    # ---- observations -------------------------------------------------------------------
    def _set_obs(self, i: int, ob: Any) -> None:
        if self.ops is not None:
            self._obs[i] = ob
        else:
            self._env_obs[i] = ob

    def _get_obs_i(self, i: int) -> Any:
        if self.ops is not None:
            return self._obs[i].copy()
        return self._env_obs[i]

    def _out_obs(self) -> Any:
        if self.ops is None:
            self._obs = concatenate(self.single_observation_space, self._env_obs, self._obs)
        if not self.copy:
            return self._obs
        return self._obs.copy() if isinstance(self._obs, np.ndarray) else copy.deepcopy(self._obs)

    def _share_renderers(self) -> None:
        """Give every task a renderer on one shared GL context (created on first use)."""
        if self._gl is None:
            e0 = self.envs[0]
            w = max(e.width for e in self.envs) if self.envs else e0.width
            w = max(w, e0.image_size[1])
            h = max(max(e.height for e in self.envs), e0.image_size[0])
            self._gl = SharedGL(w, h)
        for e in self.envs:
            if e._renderer is None:
                e._renderer = SharedContextRenderer(e.model, self._gl)
                e._textures._applied.clear()  # upload this episode's textures to the new context

    def __repr__(self) -> str:
        name = type(self.envs[0]).__name__ if getattr(self, "envs", None) else "?"
        path = "fast" if getattr(self, "ops", None) is not None else "generic"
        return (
            f"BatchedVectorEnv({name}, num_envs={self.num_envs}, nthread="
            f"{getattr(self, 'nthread', '?')}, path={path})"
        )


class _InfoBlocks:
    """A new vector info dict for one sim's info dict of many entries (a reset's ``params``),
    as ``_add_info`` builds it (same dtypes, shapes, values and masks, same key order) but
    with one allocation per kind of value instead of two per key: the arrays are rows of a
    few blocks. The plan (each key's kind) is cached per key set and checked value by value;
    an info that does not fit it goes through ``_add_info``."""

    _plans: dict[tuple, list] = {}

    @staticmethod
    def _kind(value: Any) -> tuple:
        tv = type(value)
        if tv is float or tv is int or tv is bool or issubclass(tv, np.number):
            return (tv, np.dtype(tv), ())
        if tv is np.ndarray:
            return (tv, value.dtype, value.shape)
        return (None, None, None)  # object array (and nested dicts: not planned)

    @classmethod
    def new(
        cls, venv: BatchedVectorEnv, infos: list[dict[str, Any]], cols: list[int]
    ) -> dict[str, Any] | None:
        """The vector info of the sims ``cols`` (one info dict each, the same keys), or None
        where the plan does not fit (the caller goes through ``_add_info``)."""
        n = venv.num_envs
        info = infos[0]
        keys = tuple(info)
        plan = cls._plans.get((n, keys))
        if plan is None:
            vals = list(info.values())
            if any(isinstance(v, dict) for v in vals):
                return None
            kinds = [cls._kind(v) for v in vals]
            groups: dict[tuple, list[int]] = {}
            for j, k in enumerate(kinds):
                groups.setdefault(k[1:] if k[0] is not None else (None,), []).append(j)
            names = [x for key in keys for x in (key, "_" + key)]
            arrays = [(j, k[1], k[2]) for j, k in enumerate(kinds) if k[0] is np.ndarray]
            # the blocks' rows come out in group order: each key's position among them
            order = [j for js in groups.values() for j in js]
            pos = [0] * len(order)
            for r, j in enumerate(order):
                pos[j] = r
            pick = operator.itemgetter(*pos) if len(pos) > 1 else (lambda v, p=pos[0]: (v[p],))
            plan = cls._plans[(n, keys)] = (list(map(type, vals)), arrays, list(groups.items()),
                                            names, pick)  # fmt: skip
        types, arrays, groups, names, pick = plan
        # the plan holds while every value has its planned type (and arrays their shape and
        # dtype); objects of the same type stay objects
        allvals = []
        for inf in infos:
            vals = list(inf.values())
            if list(map(type, vals)) != types or (inf is not info and tuple(inf) != keys):
                return None
            for j, dt, shape in arrays:
                v = vals[j]
                if v.shape != shape or v.dtype != dt:
                    return None
            allvals.append(vals)
        views: list[Any] = []
        for kind, js in groups:
            if kind == (None,):
                block = np.full((len(js), n), None, dtype=object)
                for c, vals in zip(cols, allvals):
                    col = block[:, c]
                    for r, j in enumerate(js):
                        col[r] = vals[j]
            else:
                block = np.zeros((len(js), n, *kind[1]), dtype=kind[0])
                for c, vals in zip(cols, allvals):
                    picked = [vals[j] for j in js]
                    if kind[1] == ():
                        block[:, c] = picked
                    else:  # (as np.stack, without its per-array checks)
                        block[:, c] = np.concatenate(picked).reshape(len(js), *kind[1])
            views += list(block)
        masks = np.zeros((len(keys), n), dtype=np.bool_)
        masks[:, cols[0] if len(cols) == 1 else cols] = True
        flat: list[Any] = [None] * (2 * len(keys))
        flat[0::2] = pick(views)
        flat[1::2] = list(masks)
        return dict(zip(names, flat))


class _Models(Sequence):
    """The tasks' current models, read on demand (a reset touches a few of them)."""

    __slots__ = ("_envs",)

    def __init__(self, envs: Sequence[SimEnv]):
        self._envs = envs

    def __len__(self) -> int:
        return len(self._envs)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [e.model for e in self._envs[i]]
        return self._envs[i].model


def copy_model(model: mujoco.MjModel) -> mujoco.MjModel:
    return copy.copy(model)


def _per_sim_options(options: dict[str, Any], n: int) -> list[dict | None]:
    """Split ``options`` per sim: a ``params`` list gives each sim its own overrides."""
    if not options:
        return [None] * n
    params = options.get("params")
    if isinstance(params, (list, tuple)):
        if len(params) != n:
            raise ValueError(f"options['params'] list must have num_envs={n} entries")
        return [{**options, "params": p} for p in params]
    return [dict(options) for _ in range(n)]


def _scatter(val: np.ndarray, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *val.shape[1:]), dtype=val.dtype)
    if val.dtype == object:
        out = np.full((n, *val.shape[1:]), None, dtype=object)
    out[rows] = val
    return out


def _split_infos(infos: dict[str, Any], rows: np.ndarray) -> list[dict[str, Any]]:
    """Per-sim info dicts of ``rows`` out of a vector info dict (for ``final_info``)."""
    out: list[dict[str, Any]] = [{} for _ in rows]
    for key, val in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        for j, i in enumerate(rows.tolist()):
            if mask is not None and not mask[i]:
                continue
            if isinstance(val, dict):
                sub = _split_infos(val, np.array([i]))[0]
                out[j][key] = sub
            else:
                v = val[i]
                out[j][key] = v.item() if isinstance(v, np.generic) else v
    return out
