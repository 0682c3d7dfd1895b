"""``QuadrotorTask``: the SimEnv base shared by DroneRace and RooftopLanding.

# STATUS: ready

A subclass builds its scene and calls ``self.add_quad(spec, pos)`` in ``build_spec``, overrides
``reset_task`` (calling ``super().reset_task(rng)`` first, then ``self.reset_quad(...)``), and
supplies its task part of the state with ``task_state()`` / ``task_state_layout()``; it writes
``evaluate()`` using the helpers here (``quad_failure``, ``quad_contacts``, ``rate_penalty``,
``action_change_penalty``). ``ground_height(x, y)`` (default 0) may be overridden for ground
effect and ground crashes over uneven terrain. ``self.quad`` (a ``Quadrotor``, rebound after
every compile) offers live views ``v_pos``/``v_vel``/``v_quat``/``v_angvel`` and ``rot_list()``
(the attitude of the current ``qpos``; MuJoCo's ``xmat`` lags it by one substep after a step)
for cheap reads; ``task_state()`` may return a list of floats (fastest) or an array.

State observation (float32), in this order::

    pos         3  m      world-frame position of the body centre
    vel         3  m/s    world-frame linear velocity
    rot         9  1      body-to-world rotation matrix R, row-major (R[:, 2] = body z in world),
                          of the current attitude (from the quaternion in qpos)
    body_rates  3  rad/s  angular velocity in body axes (what a gyro measures)
    <task>      k         task_state_layout()
    last_action 4  1      the previous normalized action commanded by the policy (hover
                          after reset; ``neutral_action()``)

IMU noise: ``sensor.imu.{pos,vel,att,gyro}_noise_std`` (per-episode std, fresh noise each step
from ``self.streams.noise``, drawn in blocks of 32 steps) is added to the first 18 entries; the
base adds its generic ``sensor.state.noise_std`` on top.

Actions (``action_mode``): "ctbr" = (collective thrust, roll rate, pitch rate, yaw rate),
"motors" = four rotor speeds; both normalized to [-1, 1], see ``action_layout()`` and
``simenvs.robots.quadrotor`` for the motor/rate-loop model and what it simplifies.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces

from simenvs.core import ParamDef, SimEnv
from simenvs.robots.quadrotor import (
    ACTION_MODES,
    Quadrotor,
    QuadrotorParams,
    add_quadrotor,
    get_preset,
    ground_effect_factor,
)

__all__ = ["QuadrotorTask", "QUAD_STATE_LAYOUT"]

QUAD_STATE_LAYOUT: list[tuple[str, int, str]] = [
    ("pos", 3, "m"),
    ("vel", 3, "m/s"),
    ("rot", 9, "1"),
    ("body_rates", 3, "rad/s"),
]
_NQ = 18
# IMU noise rows drawn per RNG call. Small, because the reset observation draws a block and
# whatever an episode leaves unused is dropped: 32 rows (576 normals) keep the per-step cost
# of refills negligible, cost ~8x less at reset than 256 and fit the batched env's per-sim
# normal buffer (1024 values) so its refills take the buffered path.
_NOISE_BLOCK = 32


class QuadrotorTask(SimEnv):
    """Quadrotor env base: 240 Hz physics, 48 Hz control, CTBR or motor actions.

    Keyword arguments (besides the SimEnv ones): ``preset`` ("crazyflie" | "racer" | a
    ``QuadrotorParams``), ``action_mode`` ("ctbr" | "motors"), ``fpv_tilt_deg`` (None: the
    preset's), ``ground_effect`` (bool), ``arena_low``/``arena_high`` (world-frame box the quad
    must stay inside; leaving it is a crash).
    """

    control_hz: float = 48.0
    physics_hz: float = 240.0
    default_image_size = (64, 64)
    obs_camera: str = "fpv"
    render_camera: str = "chase"
    randomized_cameras: tuple[str, ...] = ("fpv",)

    def __init__(
        self,
        *,
        preset: str | QuadrotorParams = "crazyflie",
        action_mode: str = "ctbr",
        fpv_tilt_deg: float | None = None,
        ground_effect: bool = False,
        arena_low: Sequence[float] = (-10.0, -10.0, 0.0),
        arena_high: Sequence[float] = (10.0, 10.0, 6.0),
        **kwargs: Any,
    ):
        if action_mode not in ACTION_MODES:
            raise ValueError(
                f"unknown action_mode {action_mode!r}; choose from {list(ACTION_MODES)}"
            )
        self.quad_params: QuadrotorParams = get_preset(preset)
        self.action_mode = action_mode
        self.fpv_tilt_deg = fpv_tilt_deg
        self.ground_effect = bool(ground_effect)
        self.arena_low = np.asarray(arena_low, dtype=np.float64)
        self.arena_high = np.asarray(arena_high, dtype=np.float64)
        if self.arena_low.shape != (3,) or self.arena_high.shape != (3,):
            raise ValueError(f"arena_low/arena_high need 3 values, got {arena_low}, {arena_high}")
        if np.any(self.arena_high <= self.arena_low):
            raise ValueError(f"arena_high {arena_high} must exceed arena_low {arena_low}")
        self.quad: Quadrotor | None = None
        self._prev_action = [0.0] * 4
        self._action_change2 = 0.0
        self._wind = np.zeros(3)
        self._wind_l = [0.0] * 3
        self._has_wind = False
        self._imu_noisy = False
        self._imu_std = np.zeros(_NQ)
        # arena bounds and crash height as plain floats (numpy scalars compare slowly)
        lo, hi = self.arena_low.tolist(), self.arena_high.tolist()
        self._arena_l = (lo[0], lo[1], hi[0], hi[1], hi[2], 0.5 * self.quad_params.body_height)
        self._uneven = type(self).ground_height is not QuadrotorTask.ground_height
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ scene
    def add_quad(self, spec: mujoco.MjSpec, pos: Sequence[float] = (0.0, 0.0, 1.0)) -> None:
        """Add the quad (and its 240 Hz physics option) to the task's spec."""
        spec.option.timestep = 1.0 / self.physics_hz
        add_quadrotor(
            spec,
            self.quad_params,
            action_mode=self.action_mode,
            pos=pos,
            fpv_tilt_deg=self.fpv_tilt_deg,
        )

    def ground_height(self, x: float, y: float) -> float:
        """Height of the surface below (x, y), for ground effect and ground crashes."""
        return 0.0

    # ------------------------------------------------------------------ params
    def param_defs(self) -> list[ParamDef]:
        """Quad dynamics (``dynamics.quad.*``) and IMU noise (``sensor.imu.*``).

        Subclasses extend: ``return super().param_defs() + [...]``. Also (re)binds ``self.quad``
        to the freshly compiled model.
        """
        if self.quad is None:
            self.quad = Quadrotor(self.model, self.quad_params, self.action_mode)
        else:
            self.quad.bind(self.model)
        self.quad.bind_data(self.data)
        # views for the per-step ground effect: this quad's applied wrench, the thrust force
        self._xfrc = self.data.xfrc_applied[self.quad.body_id]
        self._force = self.data.actuator_force
        self._thrust_i = int(self.quad.cmd_ids[0]) if self.action_mode == "ctbr" else -1
        self._prop_radius = self.quad.p.prop_radius
        q = self.quad
        # CTBR's affine action map as Python values (apply_action unrolls it)
        self._cmd_map = (
            (q._ctrl, tuple(q._cmd_idx), tuple(q._scale_l), tuple(q._offset_l))
            if self.action_mode == "ctbr"
            else None
        )
        imu = [
            ParamDef("sensor.imu.pos_noise_std", 0.0, 0.0, 0.05, unit="m",
                     doc="position estimate noise"),
            ParamDef("sensor.imu.vel_noise_std", 0.0, 0.0, 0.1, unit="m/s",
                     doc="velocity estimate noise"),
            ParamDef("sensor.imu.att_noise_std", 0.0, 0.0, 0.02, unit="1",
                     doc="noise on rotation-matrix entries"),
            ParamDef("sensor.imu.gyro_noise_std", 0.0, 0.0, 0.1, unit="rad/s",
                     doc="gyro noise"),
        ]  # fmt: skip
        return self.quad.param_defs() + imu

    def randomization_presets(self) -> dict[str, dict]:
        """Quad part of the presets; subclasses merge their own entries into these dicts."""
        p = self.quad_params
        default = {
            "dynamics.quad.mass": {"dist": "uniform", "low": 0.95 * p.mass, "high": 1.05 * p.mass},
            "dynamics.quad.inertia_scale": {"dist": "uniform", "low": 0.9, "high": 1.1},
            "dynamics.quad.kf": {"dist": "uniform", "low": 0.95 * p.kf, "high": 1.05 * p.kf},
            "dynamics.quad.km": {"dist": "uniform", "low": 0.9 * p.km, "high": 1.1 * p.km},
            "dynamics.quad.motor_tau": {
                "dist": "uniform", "low": 0.8 * p.motor_tau, "high": 1.2 * p.motor_tau},
            "dynamics.quad.thrust_scale": {"dist": "uniform", "low": 0.9, "high": 1.0},
            "dynamics.quad.wind": {"dist": "uniform", "low": [-0.5, -0.5, -0.2],
                                   "high": [0.5, 0.5, 0.2]},
            "sensor.imu.pos_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.01},
            "sensor.imu.vel_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.02},
            "sensor.imu.gyro_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.02},
        }  # fmt: skip
        wide = {
            "dynamics.quad.mass": {"dist": "uniform", "low": 0.85 * p.mass, "high": 1.15 * p.mass},
            "dynamics.quad.inertia_scale": {"dist": "uniform", "low": 0.7, "high": 1.3},
            "dynamics.quad.kf": {"dist": "uniform", "low": 0.85 * p.kf, "high": 1.15 * p.kf},
            "dynamics.quad.km": {"dist": "uniform", "low": 0.7 * p.km, "high": 1.3 * p.km},
            "dynamics.quad.motor_tau": {
                "dist": "uniform", "low": 0.6 * p.motor_tau, "high": 1.6 * p.motor_tau},
            "dynamics.quad.thrust_scale": {"dist": "uniform", "low": 0.8, "high": 1.0},
            "dynamics.quad.drag": {"dist": "uniform", "low": [0.5 * d for d in p.drag],
                                   "high": [2.0 * d for d in p.drag]},
            "dynamics.quad.wind": {"dist": "uniform", "low": [-1.5, -1.5, -0.5],
                                   "high": [1.5, 1.5, 0.5]},
            "sensor.imu.pos_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.03},
            "sensor.imu.vel_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.05},
            "sensor.imu.att_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.01},
            "sensor.imu.gyro_noise_std": {"dist": "uniform", "low": 0.0, "high": 0.05},
        }  # fmt: skip
        return {"default": default, "wide": wide}

    # ------------------------------------------------------------------ reset
    def reset_task(self, rng: np.random.Generator) -> None:
        """Per-episode constants (wind, IMU noise); subclasses call this first, then place."""
        prm = self.params
        self._wind = np.asarray(prm.get("dynamics.quad.wind", np.zeros(3)), dtype=np.float64)
        self._wind_l = self._wind.tolist()
        self._has_wind = bool(np.any(self._wind != 0.0))
        std = np.zeros(_NQ)
        std[0:3] = float(prm.get("sensor.imu.pos_noise_std", 0.0))
        std[3:6] = float(prm.get("sensor.imu.vel_noise_std", 0.0))
        std[6:15] = float(prm.get("sensor.imu.att_noise_std", 0.0))
        std[15:18] = float(prm.get("sensor.imu.gyro_noise_std", 0.0))
        self._imu_std = std
        self._imu_noisy = bool(np.any(std > 0))
        self._noise_buf = np.zeros((0, _NQ))
        self._noise_i = 0
        self.data.xfrc_applied[self.quad.body_id] = 0.0
        self._prev_action = self.quad.hover_action().tolist()
        self._action_change2 = 0.0

    def reset_quad(
        self,
        pos: Sequence[float],
        yaw: float = 0.0,
        vel: Sequence[float] = (0.0, 0.0, 0.0),
        thrust_fraction: float | None = None,
    ) -> None:
        """Place the quad level at ``pos`` facing ``yaw`` with motors spun up to hover."""
        self.quad.reset(self.data, pos, yaw, vel, thrust_fraction)
        r = _yaw_matrix(yaw)
        self.data.ctrl[self.quad._drag_slice] = self._wind @ r

    # ------------------------------------------------------------------ actions
    def action_space_def(self) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)

    def action_layout(self) -> list[tuple[str, str, float, float]]:
        return self.quad.action_layout()

    def apply_action(self, action: np.ndarray) -> None:
        # one function, Python floats only: this runs every control step (the physics of an
        # env step costs ~30 us, so each call and array read here shows)
        a = action.tolist()
        a0, a1, a2, a3 = a
        q = self.quad
        cmd = self._cmd_map
        if cmd is None:
            q.apply(a)
        else:  # CTBR: the affine map of Quadrotor.apply, unrolled
            c, (i0, i1, i2, i3), (s0, s1, s2, s3), (f0, f1, f2, f3) = cmd
            c[i0] = a0 * s0 + f0
            c[i1] = a1 * s1 + f1
            c[i2] = a2 * s2 + f2
            c[i3] = a3 * s3 + f3
        wind = self.air_velocity()
        if wind is not None or self.ground_effect:
            qp = q.v_qpos.tolist()
            r = q.rot_list(qp[3:])  # the attitude of the current qpos (cached)
            if wind is not None:  # drag reference in the body axes: (R^T w)_k = R[:, k] . w
                wx, wy, wz = wind
                c, (j0, j1, j2) = q._ctrl, q._drag_idx
                c[j0] = r[0] * wx + r[3] * wy + r[6] * wz
                c[j1] = r[1] * wx + r[4] * wy + r[7] * wz
                c[j2] = r[2] * wx + r[5] * wy + r[8] * wz
            if self.ground_effect:
                self._ground_effect_at(qp[0], qp[1], qp[2], r)
        p = self._prev_action
        self._action_change2 = (
            (a0 - p[0]) ** 2 + (a1 - p[1]) ** 2 + (a2 - p[2]) ** 2 + (a3 - p[3]) ** 2
        )
        self._prev_action = a

    def air_velocity(self) -> list[float] | None:
        """World-frame wind for this control step (3 floats; None: still air). Called once per
        step by ``apply_action``; subclasses add gusts here."""
        return self._wind_l if self._has_wind else None

    def _ground_effect_at(self, x: float, y: float, z: float, r: list[float]) -> None:
        """Extra thrust near the surface below (x, y) along body z (``r``: the attitude)."""
        gh = self.ground_height(x, y) if self._uneven else 0.0
        f = ground_effect_factor(z - gh, self._prop_radius)
        i = self._thrust_i
        k = (f - 1.0) * (self._force.item(i) if i >= 0 else self.quad.thrust(self.data))
        xf = self._xfrc  # along body z
        xf[0] = k * r[2]
        xf[1] = k * r[5]
        xf[2] = k * r[8]

    # ------------------------------------------------------------------ observations
    def task_state(self) -> np.ndarray | list[float]:
        """Task-specific part of the state (between body rates and last action); a list of
        floats is fine (and fastest)."""
        return []

    def task_state_layout(self) -> list[tuple[str, int, str]]:
        return []

    def state_layout(self) -> list[tuple[str, int, str]]:
        return [*QUAD_STATE_LAYOUT, *self.task_state_layout(), ("last_action", 4, "1")]

    def state_space(self) -> spaces.Box:
        n = sum(s for _, s, _ in self.state_layout())
        return spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)

    def quad_state(self) -> np.ndarray:
        """The 18 quad entries (pos, vel, rot, body_rates) with IMU noise, float64."""
        return np.array(self._quad_state_list())

    def _quad_state_list(self) -> list[float]:
        """``quad_state`` as Python floats (draws the IMU noise of one observation)."""
        q = self.quad
        p = q.v_qpos.tolist()
        v = q.v_qvel.tolist()
        o = p[:3] + v[:3] + q.rot_list(p[3:]) + v[3:]
        if self._imu_noisy:
            o = list(map(operator.add, o, self._imu_noise()))
        return o

    def _imu_noise(self) -> list[float] | np.ndarray:
        """Scaled IMU noise for one observation (18 values); drawn from the noise stream in
        blocks of ``_NOISE_BLOCK`` observations (one RNG call instead of one per step), kept
        as rows of Python floats (a batched env may hand back an array of the same values)."""
        i = self._noise_i
        buf = self._noise_buf
        if i >= len(buf):
            buf = self._imu_std * self.streams.noise.standard_normal((_NOISE_BLOCK, _NQ))
            buf = self._noise_buf = buf.tolist()
            i = 0
        self._noise_i = i + 1
        return buf[i]

    def state_obs(self) -> np.ndarray:
        # one list of Python floats and one conversion: several times cheaper than
        # concatenating six small arrays (values are the float64 ones rounded to float32)
        q = self.quad
        p = q.v_qpos.tolist()
        v = q.v_qvel.tolist()
        o = p[:3] + v[:3] + q.rot_list(p[3:]) + v[3:]  # _quad_state_list(), inlined
        if self._imu_noisy:
            i = self._noise_i  # _imu_noise(), inlined but for the refills
            if i < len(self._noise_buf):
                self._noise_i = i + 1
                o = list(map(operator.add, o, self._noise_buf[i]))
            else:
                o = list(map(operator.add, o, self._imu_noise()))
        o += self._task_state_list(p)
        o += self.last_action.tolist()
        return np.array(o, dtype=np.float32)

    def _task_state_list(self, qpos: list[float]) -> list[float]:
        """``task_state()`` as a list of floats (``qpos``: the quad's 7 qpos values, read
        already; a subclass may use them instead of reading them again)."""
        task = self.task_state()
        return task if type(task) is list else np.asarray(task, dtype=np.float64).ravel().tolist()

    def neutral_action(self) -> np.ndarray:
        """Hover: what the latency queue holds and ``last_action`` shows after reset."""
        return self.quad.hover_action()

    # ------------------------------------------------------------------ evaluation helpers
    def quad_failure(self, pos: Sequence[float] | None = None) -> str:
        """Empty string while flying normally, else "diverged", "ground" or "out_of_arena"
        (``pos``: the body position as 3 floats, if the caller has read it already)."""
        x, y, z = self.quad.v_pos.tolist() if pos is None else pos
        if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
            return "diverged"
        x0, y0, x1, y1, z1, half_h = self._arena_l
        gh = self.ground_height(x, y) if self._uneven else 0.0
        if z - gh < half_h:
            return "ground"
        if not (x0 <= x <= x1 and y0 <= y <= y1 and z <= z1):
            return "out_of_arena"
        return ""

    def quad_contacts(self) -> list[int]:
        """Geom ids currently touching the quad's collision geom."""
        d = self.data
        if d.ncon == 0:
            return []
        g = self.quad.collision_geom
        out = []
        for c in d.contact[: d.ncon]:
            if c.geom1 == g:
                out.append(int(c.geom2))
            elif c.geom2 == g:
                out.append(int(c.geom1))
        return out

    def rate_penalty(self) -> float:
        """Squared norm of the body rates (rad^2/s^2)."""
        wx, wy, wz = self.quad.v_angvel.tolist()
        return wx * wx + wy * wy + wz * wz

    def action_change_penalty(self) -> float:
        """Squared norm of the last change of the applied normalized action."""
        return self._action_change2

    def hover_action(self) -> np.ndarray:
        return self.quad.hover_action().astype(np.float32)


def merge_reward_weights(
    defaults: Mapping[str, float], overrides: Mapping[str, float] | None
) -> dict[str, float]:
    """A task's reward weights with the user's ``reward_weights`` kwarg applied (names checked)."""
    weights = dict(defaults)
    for k, v in (overrides or {}).items():
        if k not in defaults:
            raise ValueError(f"unknown reward weight {k!r}; allowed: {list(defaults)}")
        weights[k] = float(v)
    return weights


def _yaw_matrix(yaw: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
