"""SimEnv: the MuJoCo Gymnasium env every simenvs task subclasses.

The base owns everything that is the same across tasks — compiling the task's scene,
the parameter registry, seeded per-episode randomization applied in place, action
validation and latency, physics substeps with divergence handling, observation modes,
sensor noise and rendering — so a task only writes its scene, its action mapping, its
state and its reward (see docs/ENV_API.md).
"""

from __future__ import annotations

import fnmatch
import inspect
import os
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from gymnasium import spaces  # noqa: E402
from gymnasium.vector import AutoresetMode  # noqa: E402

from simenvs.core.rendering import SceneRenderer, prepare_fast_rendering  # noqa: E402
from simenvs.randomization.appearance import (  # noqa: E402
    Distractors,
    TextureBank,
    appearance_key,
    appearance_param_defs,
)
from simenvs.randomization.params import ParamDef  # noqa: E402
from simenvs.randomization.presets import base_presets  # noqa: E402
from simenvs.randomization.sensor import (  # noqa: E402
    SENSOR_DEFAULTS,
    apply_depth_noise,
    apply_image_noise,
    sensor_param_defs,
)
from simenvs.randomization.spec import BoundSpec, RandomizationSpec  # noqa: E402
from simenvs.randomization.streams import STREAMS, Streams  # noqa: E402

__all__ = ["SimEnv", "OBS_MODES", "PRESETS"]

OBS_MODES = ("state", "rgb", "depth", "rgbd", "state_rgb")
PRESETS = ("none", "default", "wide")
_BAD = (
    int(mujoco.mjtWarning.mjWARN_BADQACC),
    int(mujoco.mjtWarning.mjWARN_BADQPOS),
    int(mujoco.mjtWarning.mjWARN_BADQVEL),
)
# the three counters are adjacent in data.warning: one slice reads them all
assert max(_BAD) - min(_BAD) == len(_BAD) - 1
_BAD_SLICE = slice(min(_BAD), max(_BAD) + 1)


class SimEnv(gym.Env):
    """Base class; see docs/ENV_API.md for the hooks a task implements."""

    metadata: dict[str, Any] = {
        "render_modes": ["rgb_array", "depth_array"],
        "render_fps": 20,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    # ---- task configuration (class attributes) ------------------------------------------
    control_hz: float = 20.0
    max_episode_steps: int = 500
    default_image_size: tuple[int, int] = (64, 64)
    obs_camera: str | int = -1
    render_camera: str | int = -1
    randomized_cameras: tuple[str, ...] = ()
    depth_max: float = 10.0  # metres mapped to 255 in uint8 depth observations
    extra_obs_modes: tuple[str, ...] = ()
    expert_entry_point: str | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.metadata = {**SimEnv.metadata, **cls.__dict__.get("metadata", {})}
        cls.metadata["render_fps"] = int(round(cls.control_hz))

    def __init__(
        self,
        *,
        obs_mode: str = "state",
        render_mode: str | None = None,
        width: int = 256,
        height: int = 256,
        camera: str | int | None = None,
        image_size: int | tuple[int, int] | None = None,
        randomization: str | Mapping | RandomizationSpec | Path = "default",
        labels: bool = False,
        max_episode_steps: int | None = None,
        **unknown: Any,
    ):
        if unknown:
            raise TypeError(
                f"{type(self).__name__} got unknown argument(s) {sorted(unknown)}; "
                f"allowed: {sorted(self._allowed_kwargs())}"
            )
        modes = OBS_MODES + tuple(self.extra_obs_modes)
        if obs_mode not in modes:
            raise ValueError(f"unknown obs_mode {obs_mode!r}; allowed: {list(modes)}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"unknown render_mode {render_mode!r}; allowed: {self.metadata['render_modes']}"
            )
        if image_size is None:
            image_size = self.default_image_size
        if isinstance(image_size, (int, np.integer)):
            image_size = (int(image_size), int(image_size))
        if len(image_size) != 2 or min(image_size) < 8 or max(image_size) > 2048:
            raise ValueError(f"image_size must be (height, width) in [8, 2048], got {image_size!r}")
        for name, v in (("width", width), ("height", height)):
            if not 8 <= int(v) <= 4096:
                raise ValueError(f"{name} must be in [8, 4096], got {v!r}")
        if max_episode_steps is not None:
            if int(max_episode_steps) < 1:
                raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps!r}")
            self.max_episode_steps = int(max_episode_steps)
        self.obs_mode = obs_mode
        self.render_mode = render_mode
        self.width, self.height = int(width), int(height)
        self.camera = self.render_camera if camera is None else camera
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.labels = bool(labels)
        self.metadata = {**type(self).metadata, "render_fps": int(round(self.control_hz))}

        self.streams = Streams(None)
        self.params: dict[str, Any] = {}
        self._state_std = 0.0
        self._sensor_active = False
        self.step_count = 0
        self._renderer: SceneRenderer | None = None
        self._closed = False
        self._spec = self._resolve_spec(randomization)
        self._compile(self.build_spec(self.streams.layout))
        self.action_space = self.action_space_def()
        self._act_low = self.action_space.low.astype(np.float64)
        self._act_high = self.action_space.high.astype(np.float64)
        self._act_shape = tuple(self.action_space.shape)
        # (low, high) per element as Python floats: small actions are checked in plain Python
        self._act_bounds = (
            list(zip(self._act_low.ravel().tolist(), self._act_high.ravel().tolist()))
            if self._act_low.size <= 16
            and np.isfinite(self._act_low).all()
            and np.isfinite(self._act_high).all()
            else None  # large or unbounded spaces: the vectorized check (rejects inf)
        )
        self._substep_hook = type(self).before_substep is not SimEnv.before_substep
        self.last_action = np.zeros(self.action_space.shape, dtype=np.float64)
        self.observation_space = self._make_observation_space()
        self.metadata["render_fps"] = int(round(1.0 / self.dt))

    # ---- hooks (override in tasks) ------------------------------------------------------
    def build_spec(self, rng: np.random.Generator) -> mujoco.MjSpec:
        raise NotImplementedError

    def needs_rebuild(self) -> bool:
        return False

    def param_defs(self) -> list[ParamDef]:
        return []

    def randomization_presets(self) -> dict[str, dict]:
        return {}

    def reset_task(self, rng: np.random.Generator) -> None:
        pass

    def action_space_def(self) -> spaces.Box:
        raise NotImplementedError

    def apply_action(self, action: np.ndarray) -> None:
        raise NotImplementedError

    def before_substep(self) -> None:
        pass

    def state_space(self) -> spaces.Box:
        raise NotImplementedError

    def state_obs(self) -> np.ndarray:
        raise NotImplementedError

    def evaluate(self) -> tuple[float, bool, dict]:
        raise NotImplementedError

    def reset_info(self) -> dict[str, Any]:
        """Extra entries for the info dict of ``reset`` (ground truth, labels...)."""
        return {}

    def state_noise_scale(self) -> np.ndarray | float:
        """Per-dimension multiplier of ``sensor.state.noise_std`` (1 by default)."""
        return 1.0

    def neutral_action(self) -> np.ndarray:
        """Action assumed to be in flight before the first step (latency queue fill)."""
        return np.zeros(self.action_space.shape, dtype=np.float64)

    def state_layout(self) -> list[tuple[str, int, str]]:
        return [("state", int(np.prod(self.state_space().shape)), "")]

    def action_layout(self) -> list[tuple[str, str, float, float]]:
        lo, hi = self.action_space.low, self.action_space.high
        return [(f"a{i}", "1", float(lo[i]), float(hi[i])) for i in range(lo.size)]

    # ---- public API ---------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Control period in seconds."""
        return self._dt

    @property
    def registry(self) -> list[ParamDef]:
        return list(self._registry)

    @property
    def randomization(self) -> RandomizationSpec:
        """The current distribution, presets expanded to their full entries."""
        if isinstance(self._spec, _Preset):
            return self.preset_spec(self._spec.name)
        return self._spec

    def set_randomization(self, spec: str | Mapping | RandomizationSpec | Path) -> None:
        """Swap the distribution for the next episodes (works through VectorEnv.call)."""
        resolved = self._resolve_spec(spec)
        self._bound = self._bind(resolved)
        self._spec = resolved

    def randomization_summary(self) -> dict[str, Any]:
        return self._bound.describe()

    # ---- gymnasium API ------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"params", "seeds"}
        if unknown:
            raise ValueError(f"unknown reset option(s) {sorted(unknown)}; allowed: params, seeds")
        seeds = options.get("seeds")
        if seed is not None:
            self.streams = Streams(seed, seeds)
        elif seeds:
            fresh = Streams(None, seeds)
            for k in seeds:
                self.streams._gens[k] = fresh[k]
        params = self._bound.sample(self.streams, options.get("params"))
        self.params = params
        self._state_std = float(params.get("sensor.state.noise_std", 0.0))
        # camera effects are per episode: decide once whether any departs from neutral
        self._sensor_active = any(params.get(k, v) != v for k, v in SENSOR_DEFAULTS.items())
        if self.needs_rebuild():
            self._compile(self.build_spec(self.streams.layout))
        model, data = self.model, self.data
        mujoco.mj_resetData(model, data)
        for p in self._registry:
            if p.apply is not None:
                p.apply(model, params[p.name])
        # derived constants (dof_M0 caches simple bodies' masses, invweights...) follow the
        # edited masses and inertias; mj_setConst moves the state to qpos0, so reset again
        mujoco.mj_setConst(model, data)
        mujoco.mj_resetData(model, data)
        self._distractors.apply(model, data, params)
        self._distractor_time = 0.0
        self._latency = int(params.get("dynamics.action_latency", 0))
        self._queue = deque([self.neutral_action()] * self._latency, maxlen=self._latency + 1)
        self.last_action = self.neutral_action()
        self.step_count = 0
        self._physics_error = None
        self.reset_task(self.streams.layout)
        mujoco.mj_forward(model, data)
        self._warn0 = self._warning_count()
        obs = self._get_obs()
        info = {"params": dict(params), "is_success": False, **self.reset_info()}
        return obs, info

    def step(self, action):
        a = self._check_action(action)
        if self._latency:
            self._queue.append(a)
            self.apply_action(self._queue.popleft())
        else:
            self.apply_action(a)
        self._integrate()
        self.last_action = a
        self.step_count = n = self.step_count + 1
        self._distractor_time += self._dt  # moved lazily, before the next render
        error = self._check_physics()
        if error is not None:
            obs = self._get_obs()
            info = {"physics_error": error, "is_success": False}
            return obs, 0.0, False, True, info
        reward, terminated, info = self.evaluate()
        truncated = n >= self.max_episode_steps and not terminated
        if truncated:
            info["TimeLimit.truncated"] = True
        info.setdefault("is_success", False)
        return self._get_obs(), float(reward), bool(terminated), bool(truncated), info

    def _integrate(self) -> None:
        """Advance the physics by one control period (a second engine overrides this)."""
        if self._substep_hook:
            model, data = self.model, self.data
            for _ in range(self.frame_skip):
                self.before_substep()
                mujoco.mj_step(model, data)
        else:
            mujoco.mj_step(self.model, self.data, self.frame_skip)

    def render(self):
        if self.render_mode is None:
            gym.logger.warn("render() called without render_mode; pass render_mode='rgb_array'")
            return None
        mode = "depth" if self.render_mode == "depth_array" else "rgb"
        return self.render_camera_image(self.camera, self.width, self.height, mode)

    def close(self):
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._closed = True

    # ---- rendering ----------------------------------------------------------------------
    def render_camera_image(
        self, camera: str | int, width: int, height: int, mode: str = "rgb"
    ) -> np.ndarray:
        """A clean image (no sensor noise): mode rgb | depth (metres) | segmentation (geom id)."""
        r = self._ensure_renderer()
        self._textures.refresh(self.params, r.upload_texture)
        if self._distractor_time:
            self._distractors.advance(self.data, self._distractor_time)
            self._distractor_time = 0.0
        return r.render(self.data, camera, width, height, mode)

    def _ensure_renderer(self) -> SceneRenderer:
        if self._renderer is None:
            if self._closed:
                self._closed = False
            w = max(self.width, self.image_size[1])
            h = max(self.height, self.image_size[0])
            self._renderer = SceneRenderer(self.model, w, h)
        return self._renderer

    # ---- observations -------------------------------------------------------------------
    def _make_observation_space(self) -> spaces.Space:
        h, w = self.image_size
        img = lambda c: spaces.Box(0, 255, (h, w, c), np.uint8)  # noqa: E731
        mode = self.obs_mode
        if mode == "state":
            return self.state_space()
        if mode == "rgb":
            return img(3)
        if mode == "depth":
            return img(1)
        if mode == "rgbd":
            return img(4)
        if mode == "state_rgb":
            return spaces.Dict({"state": self.state_space(), "image": img(3)})
        return self.extra_observation_space(mode)

    def extra_observation_space(self, mode: str) -> spaces.Space:
        raise NotImplementedError(mode)

    def extra_obs(self, mode: str) -> Any:
        raise NotImplementedError(mode)

    def _get_obs(self) -> Any:
        mode = self.obs_mode
        if mode == "state":
            return self.noisy_state()
        if mode == "rgb":
            return self.camera_obs("rgb")
        if mode == "depth":
            return self.camera_obs("depth")
        if mode == "rgbd":
            return np.concatenate([self.camera_obs("rgb"), self.camera_obs("depth")], axis=-1)
        if mode == "state_rgb":
            return {"state": self.noisy_state(), "image": self.camera_obs("rgb")}
        return self.extra_obs(mode)

    def noisy_state(self) -> np.ndarray:
        """``state_obs()`` with this episode's state noise: what a state observation holds."""
        s = np.asarray(self.state_obs(), dtype=np.float32)
        std = self._state_std  # this episode's value, read once at reset
        if std > 0.0:
            noise = self.streams.noise.standard_normal(s.shape) * std * self.state_noise_scale()
            s = (s + noise).astype(np.float32)
        return s

    def camera_obs(self, kind: str = "rgb", camera: str | int | None = None) -> np.ndarray:
        """An observation image from the task camera, with this episode's sensor effects."""
        h, w = self.image_size
        cam = self.obs_camera if camera is None else camera
        if kind == "rgb":
            img = self.render_camera_image(cam, w, h, "rgb")
            if self._sensor_active:
                img = apply_image_noise(img, self.params, self.streams.noise)
            return img
        depth = self.render_camera_image(cam, w, h, "depth")
        depth = apply_depth_noise(depth, self.params, self.streams.noise)
        q = np.clip(depth / self.depth_max, 0.0, 1.0) * 255.0 + 0.5
        return q.astype(np.uint8)[..., None]

    # ---- internals ----------------------------------------------------------------------
    def _compile(self, spec: mujoco.MjSpec) -> None:
        # one thread: the compiler's pool cost ~0.6 ms more CPU (and wall) than it saved on
        # a Grasp scene (measured, bit-identical model), on every recompile
        spec.compiler.usethread = False
        try:
            model = spec.compile()
        except Exception as e:  # MuJoCo's compiler error names the element
            raise RuntimeError(f"{type(self).__name__}: scene failed to compile: {e}") from e
        prepare_fast_rendering(
            model, max(self.width, self.image_size[1]), max(self.height, self.image_size[0])
        )
        self.model = model
        self.data = mujoco.MjData(model)
        self.frame_skip = max(1, int(round(1.0 / (model.opt.timestep * self.control_hz))))
        self._dt = float(model.opt.timestep) * self.frame_skip
        self._warnings = self.data.warning.number  # live views of the warning counters
        self._bad_warnings = self._warnings[_BAD_SLICE]
        self._registry = self._build_registry()
        self._bound = self._bind(self._spec)
        self._textures = TextureBank(model)
        self._distractors = Distractors(model)
        if self._renderer is not None:
            self._renderer.set_model(model)

    def _build_registry(self) -> list[ParamDef]:
        # the generic definitions are reused while the model's appearance elements are the
        # same (a rebuilt scene around new objects): building them cost 1-3 ms per compile
        key = appearance_key(self.model, self.randomized_cameras)
        cache = self.__dict__.get("_generic_defs")
        if cache is None or cache[0] != key:
            generic = appearance_param_defs(self.model, self.randomized_cameras)
            generic += _SENSOR_DEFS
            generic.append(_LATENCY_DEF)
            index = {}
            for i, p in enumerate(generic):
                index.setdefault(p.name, i)  # the first of a name, as list.index finds it
            self._generic_defs = cache = (key, tuple(generic), index)
        defs = list(cache[1])
        index = dict(cache[2])
        for p in self.param_defs():
            i = index.get(p.name)
            if i is not None:  # a task may redefine a generic parameter
                defs[i] = p
            else:
                index[p.name] = len(defs)
                defs.append(p)
        return defs

    def _resolve_spec(self, spec: Any) -> RandomizationSpec:
        if isinstance(spec, RandomizationSpec):
            return spec
        if isinstance(spec, Path) or (
            isinstance(spec, str) and spec.endswith((".yaml", ".yml", ".json"))
        ):
            return RandomizationSpec.from_yaml(spec)
        if isinstance(spec, str):
            if spec not in PRESETS:
                raise ValueError(
                    f"unknown randomization {spec!r}; allowed: {list(PRESETS)}, a dict, a "
                    "RandomizationSpec or a path to a .yaml file"
                )
            return _Preset(spec)  # resolved against the registry at bind time
        if isinstance(spec, Mapping):
            return RandomizationSpec.from_dict(spec)
        raise TypeError(f"randomization must be a preset name, dict, spec or path, got {spec!r}")

    def _bind(self, spec: RandomizationSpec) -> BoundSpec:
        """Bind ``spec`` to the registry, reusing the last binding when a rebuilt model kept
        every parameter's name, shape and bounds (sampling needs only those; ``apply`` is
        always taken from the current registry)."""
        sig = tuple([p.signature() for p in self._registry])
        cache = self.__dict__.get("_bind_cache")
        if cache is not None and cache[0] is spec and cache[1] == sig:
            return cache[2]
        resolved = self.preset_spec(spec.name) if isinstance(spec, _Preset) else spec
        bound = resolved.bind(self._registry)
        self._bind_cache = (spec, sig, bound)
        return bound

    def preset_spec(self, name: str) -> RandomizationSpec:
        """The full spec of a preset for the current model (base + task entries)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; allowed: {list(PRESETS)}")
        names = [p.name for p in self._registry]
        # a preset may name optional elements (distractors when there are none): patterns
        # that match nothing are dropped here; a user's spec still errors on them
        task = {
            k: {n: d for n, d in v.items() if n == "joint" or fnmatch.filter(names, n)}
            for k, v in self.randomization_presets().items()
        }
        base = base_presets(self._registry)
        default = RandomizationSpec.from_dict(base["default"]).merged(task.get("default", {}))
        if name == "none":
            return RandomizationSpec(
                {k: v for k, v in default.params.items() if k.startswith("layout.")},
                tuple(j for j in default.joint if j.names[0].startswith("layout.")),
            )
        if name == "default":
            return default
        return RandomizationSpec.from_dict(base["wide"]).merged(
            task.get("wide", task.get("default", {}))
        )

    def _check_action(self, action: Any) -> np.ndarray:
        """A float64 copy of ``action``, shape-checked, finite (else a ValueError naming the
        bad entries) and clipped to the action space."""
        shape = self._act_shape
        try:  # the usual case, an array of the right shape, skips np.array's coercion
            if type(action) is np.ndarray and action.shape == shape:
                a = action.astype(np.float64)
            else:
                a = np.array(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"action must be numeric with shape {shape}, got {action!r}") from None
        if a.shape != shape:
            if a.size == int(np.prod(shape)) and a.ndim <= 1 + len(shape):
                a = a.reshape(shape)
            else:
                raise ValueError(f"action must have shape {shape}, got {a.shape}")
        bounds = self._act_bounds
        if bounds is not None:
            # common case, in plain Python: every entry inside its bounds (NaN fails a
            # comparison, so it takes the checked path below); nothing to clip
            for v, (lo, hi) in zip(a.tolist() if a.ndim == 1 else a.ravel().tolist(), bounds):
                if not lo <= v <= hi:
                    break
            else:
                return a
        flat = a.reshape(-1)
        if not np.isfinite(flat).all():
            bad = np.flatnonzero(~np.isfinite(flat)).tolist()
            raise ValueError(f"action has non-finite values at indices {bad}: {a.tolist()}")
        np.minimum(a, self._act_high, out=a)
        np.maximum(a, self._act_low, out=a)
        return a

    def _warning_count(self) -> int:
        return sum(self._bad_warnings.tolist())

    def _check_physics(self) -> str | None:
        """MuJoCo flags bad qpos/qvel/qacc itself (and resets the state): just read its counts."""
        n = self._warning_count()  # one read of three adjacent counters: cheap on every step
        if n > self._warn0:
            self._warn0 = n
            names = [mujoco.mjtWarning(w).name for w in _BAD if self._warnings[w]]
            return f"physics diverged ({', '.join(names)}) at step {self.step_count}"
        return None

    @classmethod
    def _allowed_kwargs(cls) -> set[str]:
        names: set[str] = set()
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None or klass is gym.Env or klass is object:
                continue
            for p in inspect.signature(init).parameters.values():
                if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self":
                    names.add(p.name)
        return names


# definitions that never depend on the model: built once, shared (ParamDef is frozen)
_SENSOR_DEFS = tuple(sensor_param_defs(True))
_LATENCY_DEF = ParamDef(
    "dynamics.action_latency", 0, 0, 10, dtype=int, unit="control steps",
    doc="actions reach the actuators this many control steps late",
)  # fmt: skip


class _Preset(RandomizationSpec):
    """A preset name, expanded against the env's registry when bound."""

    def __init__(self, name: str):
        super().__init__({}, ())
        object.__setattr__(self, "name", name)

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.name}


assert set(STREAMS) >= {"layout", "appearance", "dynamics", "sensor", "noise"}
