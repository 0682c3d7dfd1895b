"""Shared quadrotor model: presets, an MjSpec builder and a compiled-model handle.

# STATUS: ready

Used by ``simenvs/DroneRace-v0`` and ``simenvs/RooftopLanding-v0`` (through
``simenvs.envs.quadrotor_task.QuadrotorTask``). The whole inner loop runs inside MuJoCo, in C,
at physics rate (DESIGN.md: ~5x faster than a numpy motor/rate loop per substep):

* Integration: semi-implicit Euler at 240 Hz (see ``add_quadrotor``).
* ``action_mode="ctbr"`` (default): collective thrust + body rates. One site actuator pushes
  along body z (the collective thrust) and three site-transmission *velocity* actuators apply
  ``kv * (w_ref - w)`` about the body axes (the rate P loop, ``kv = I_nominal / rate_tau``). Every
  command passes through a first-order lag with the motor time constant (``dyntype=filterexact``).
* ``action_mode="motors"``: four site actuators at the rotors; each pushes ``kf * w^2`` along body z
  and twists ``+-km * w^2`` about it (alternate spin directions), through the same lag.
* Drag: three site velocity actuators with zero reference give linear body-axis drag
  ``-D_i * (v - v_wind)_i`` (the wind, in body axes, is written to their ctrl each control step).

What this simplifies (say it when comparing with hardware):

* The lag acts on thrust (proportional to w^2), not on rotor speed w.
* CTBR: there is no mixer. Thrust and the three torques saturate independently (thrust in
  [0, T_max], torques within fixed limits: half of the single-axis maximum a mixer could give)
  instead of the coupled per-motor limits of a real mixer; the rate loop is a pure P loop with
  the lag applied to its reference rather than inside the loop, so it does not overshoot; rotor
  gyroscopic and yaw-reaction coupling are absent (yaw comes only from the rate loop, limited by
  ``km``).
* Motors: no rate loop at all; rotor drag, blade flapping and induced-velocity effects are
  absent in both modes (only the linear body drag above).
* Ground effect (optional, the task applies it once per control step) uses the
  Cheeseman-Bennett factor on the total thrust at the centre's height.

* Wind enters through the drag actuators' reference, refreshed once per control step.

Public API: ``QuadrotorParams``, ``PRESETS``, ``get_preset``, ``add_quadrotor`` (builder),
``Quadrotor`` (ids, action mapping, state readout, resets, ``param_defs``; after
``bind_data(data)`` the allocation-free fast path ``apply``/``apply_wind``, live views
``v_pos``/``v_vel``/``v_quat``/``v_angvel`` and ``rot_list()``, the current attitude),
``quat_to_rot``/``quats_to_rots`` (the attitude of ``qpos``: MuJoCo's ``xmat`` is one substep
old after ``mj_step``), ``ground_effect_factor``, ``ACTION_MODES``, ``GRAVITY``.
The mass and inertia params also update MuJoCo 4's cached ``dof_M0`` (the quad
is a "simple" body whose mass matrix is a compile-time constant).

Element names (prefix ``quad`` by default):
body ``quad``, free joint ``quad_root``, sites ``quad_imu`` and ``quad_rotor{0..3}``, collision
geom ``quad_collision``, actuators ``quad_thrust``/``quad_rate_{x,y,z}`` or ``quad_motor{0..3}``
and ``quad_drag_{x,y,z}``, cameras ``fpv`` (forward, tilted up), ``down`` and ``chase``
(follows the quad, for render()).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np

from simenvs.robots.indexing import as_slice

__all__ = [
    "ACTION_MODES",
    "GRAVITY",
    "PRESETS",
    "QuadrotorParams",
    "Quadrotor",
    "add_quadrotor",
    "get_preset",
    "ground_effect_factor",
    "quat_to_rot",
    "quats_to_rots",
]

GRAVITY = 9.81
ACTION_MODES = ("ctbr", "motors")
# Rotor order: front-left, back-left, back-right, front-right (x forward, y left, z up).
_ROTOR_XY = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]]) / math.sqrt(2.0)
# Reaction torque sign about +z of each rotor (alternating spin directions).
_ROTOR_YAW_SIGN = np.array([-1.0, 1.0, -1.0, 1.0])


@dataclass(frozen=True)
class QuadrotorParams:
    """Physical constants of one quadrotor (SI units, rotor speeds in rpm like DESIGN.md)."""

    name: str
    mass: float  # kg
    arm: float  # m, centre to rotor axis
    inertia: tuple[float, float, float]  # kg m^2, principal, body axes
    kf: float  # N / rpm^2: thrust = kf * w^2
    km: float  # N m / rpm^2: yaw reaction torque = km * w^2
    thrust_to_weight: float  # all motors at max rpm, nominal mass
    motor_tau: float  # s, first-order motor time constant
    rate_tau: float  # s, closed-loop time constant of the CTBR body-rate P loop
    max_rate: tuple[float, float, float]  # rad/s, CTBR body-rate command range
    drag: tuple[float, float, float]  # N s/m, linear drag along body x, y, z
    prop_radius: float  # m, for visuals, collision box and ground effect
    body_height: float  # m, collision box full height
    fpv_tilt_deg: float  # default upward tilt of the FPV camera
    fpv_fovy: float  # deg

    def __post_init__(self) -> None:
        for f in ("mass", "arm", "kf", "km", "thrust_to_weight", "motor_tau", "rate_tau"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"QuadrotorParams.{f} must be a positive number, got {v!r}")
        if self.thrust_to_weight <= 1.0:
            raise ValueError(f"thrust_to_weight must be > 1 to fly, got {self.thrust_to_weight}")
        for f in ("inertia", "max_rate", "drag"):
            v = getattr(self, f)
            if len(v) != 3:
                raise ValueError(f"QuadrotorParams.{f} needs 3 values, got {v!r}")

    # ---- derived quantities ----
    @property
    def weight(self) -> float:
        return self.mass * GRAVITY

    @property
    def max_thrust(self) -> float:
        """Total thrust at max rpm (N)."""
        return self.thrust_to_weight * self.weight

    @property
    def max_motor_thrust(self) -> float:
        return self.max_thrust / 4.0

    @property
    def max_rpm(self) -> float:
        return math.sqrt(self.max_motor_thrust / self.kf)

    @property
    def hover_rpm(self) -> float:
        return math.sqrt(self.weight / (4.0 * self.kf))

    @property
    def hover_thrust_fraction(self) -> float:
        """Collective thrust command (0..1 of max) that hovers at nominal parameters."""
        return 1.0 / self.thrust_to_weight

    @property
    def torque_limits(self) -> tuple[float, float, float]:
        """CTBR torque saturation (N m): half the single-axis maximum of an X mixer."""
        tm = self.max_motor_thrust
        rp = 0.5 * math.sqrt(2.0) * self.arm * tm  # two rotors full, two off: sqrt(2) L T_m
        yaw = 0.5 * 2.0 * self.km * self.max_rpm**2  # one diagonal pair full, the other off
        return (rp, rp, yaw)

    @property
    def rate_gains(self) -> tuple[float, float, float]:
        """kv of the rate P loop: nominal inertia / rate_tau."""
        return tuple(i / self.rate_tau for i in self.inertia)  # type: ignore[return-value]

    @property
    def collision_half_extent(self) -> float:
        """Half width of the collision box (rotor tips included)."""
        return self.arm / math.sqrt(2.0) + self.prop_radius

    @property
    def radius(self) -> float:
        """Radius of a sphere around the airframe, used for geometric crash checks."""
        return self.arm + self.prop_radius

    def replace(self, **changes: Any) -> QuadrotorParams:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, QuadrotorParams] = {
    # Crazyflie 2.x (DESIGN.md; inertia and drag as in gym-pybullet-drones' cf2x at hover rpm).
    "crazyflie": QuadrotorParams(
        name="crazyflie",
        mass=0.027,
        arm=0.0397,
        inertia=(1.4e-5, 1.4e-5, 2.17e-5),
        kf=3.16e-10,
        km=7.94e-12,
        thrust_to_weight=2.25,
        motor_tau=0.07,
        rate_tau=0.04,
        max_rate=(10.0, 10.0, 5.0),
        drag=(0.0056, 0.0056, 0.0062),
        prop_radius=0.0231,
        body_height=0.025,
        fpv_tilt_deg=0.0,
        fpv_fovy=90.0,
    ),
    # 5-inch racer (DESIGN.md ranges; inertia like published 0.75-0.87 kg racing frames).
    "racer": QuadrotorParams(
        name="racer",
        mass=0.8,
        arm=0.16,
        inertia=(0.0027, 0.0027, 0.0046),
        kf=8.3e-9,
        km=1.33e-10,
        thrust_to_weight=3.8,
        motor_tau=0.04,
        rate_tau=0.03,
        max_rate=(12.0, 12.0, 6.0),
        drag=(0.25, 0.25, 0.35),
        prop_radius=0.0635,
        body_height=0.05,
        fpv_tilt_deg=20.0,
        fpv_fovy=100.0,
    ),
}


def get_preset(preset: str | QuadrotorParams) -> QuadrotorParams:
    """A preset by name, or the given params unchanged."""
    if isinstance(preset, QuadrotorParams):
        return preset
    if preset not in PRESETS:
        raise ValueError(f"unknown quadrotor preset {preset!r}; choose from {sorted(PRESETS)}")
    return PRESETS[preset]


def ground_effect_factor(height: float, prop_radius: float, max_factor: float = 1.6) -> float:
    """Cheeseman-Bennett in-ground-effect thrust multiplier 1 / (1 - (R / 4z)^2), capped."""
    if height <= 0.0:
        return max_factor
    r = prop_radius / (4.0 * height)
    if r >= 1.0:
        return max_factor
    return min(max_factor, 1.0 / (1.0 - r * r))


def quat_to_rot(w: float, x: float, y: float, z: float) -> list[float]:
    """Row-major rotation matrix of a unit quaternion (w, x, y, z) as 9 Python floats.

    MuJoCo's ``xmat`` is computed at the start of ``mj_step``, before the integration, so after
    a step it lags ``qpos`` by one substep; this gives the attitude of the current ``qpos``.
    ``quats_to_rots`` is the same arithmetic over arrays (bit-identical results).
    """
    q00, q01, q02, q03 = w * w, w * x, w * y, w * z
    q11, q12, q13 = x * x, x * y, x * z
    q22, q23, q33 = y * y, y * z, z * z
    return [
        q00 + q11 - q22 - q33, 2.0 * (q12 - q03), 2.0 * (q13 + q02),
        2.0 * (q12 + q03), q00 - q11 + q22 - q33, 2.0 * (q23 - q01),
        2.0 * (q13 - q02), 2.0 * (q23 + q01), q00 - q11 - q22 + q33,
    ]  # fmt: skip


def quats_to_rots(quat: np.ndarray) -> np.ndarray:
    """``quat_to_rot`` over an (..., 4) array of unit quaternions: (..., 9) row-major matrices
    (for batched code that must match the single env bit for bit)."""
    q = np.asarray(quat, dtype=np.float64)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    q00, q01, q02, q03 = w * w, w * x, w * y, w * z
    q11, q12, q13 = x * x, x * y, x * z
    q22, q23, q33 = y * y, y * z, z * z
    return np.stack(
        [
            q00 + q11 - q22 - q33, 2.0 * (q12 - q03), 2.0 * (q13 + q02),
            2.0 * (q12 + q03), q00 - q11 + q22 - q33, 2.0 * (q23 - q01),
            2.0 * (q13 - q02), 2.0 * (q23 + q01), q00 - q11 - q22 + q33,
        ],
        axis=-1,
    )  # fmt: skip


def _check_mode(action_mode: str) -> str:
    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown action_mode {action_mode!r}; choose from {list(ACTION_MODES)}")
    return action_mode


def _camera_xyaxes_fpv(tilt_deg: float) -> list[float]:
    t = math.radians(tilt_deg)
    # right = -y body, up = body z rotated back by the tilt; the camera looks along +x tilted up.
    return [0.0, -1.0, 0.0, -math.sin(t), 0.0, math.cos(t)]


def add_quadrotor(
    spec: mujoco.MjSpec,
    params: QuadrotorParams | str = "crazyflie",
    *,
    action_mode: str = "ctbr",
    prefix: str = "quad",
    pos: Sequence[float] = (0.0, 0.0, 1.0),
    fpv_tilt_deg: float | None = None,
    fpv_fovy: float | None = None,
    rgba: Sequence[float] = (0.15, 0.15, 0.18, 1.0),
    contype: int = 1,
    conaffinity: int = 1,
    parent: Any = None,
) -> mujoco.MjsBody:
    """Add the quadrotor (free body, sites, actuators, cameras) to ``spec``; returns the body.

    Uses 240 Hz physics when the caller left MuJoCo's default timestep, and semi-implicit Euler
    (MuJoCo's default) integration: ``implicitfast`` differentiates the rate actuators as if they
    never saturated, which blew up tumbling quads in testing, while explicit velocity feedback is
    stable as long as ``rate_tau`` (and ``I / drag``) stay above ~1.5 timesteps (checked here).
    Cameras are named ``fpv``/``down``/``chase`` without prefix (one quad per scene).
    """
    p = get_preset(params)
    _check_mode(action_mode)
    if spec.option.timestep == 0.002:  # MuJoCo's default: use the racing standard 240 Hz
        spec.option.timestep = 1.0 / 240.0
    dt = spec.option.timestep
    if p.rate_tau < 1.5 * dt:
        raise ValueError(
            f"rate_tau={p.rate_tau} s is too short for timestep {dt} s (explicit rate loop "
            f"needs rate_tau >= {1.5 * dt:.4f} s); raise rate_tau or lower the timestep"
        )
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_EULER
    root = parent if parent is not None else spec.worldbody
    body = root.add_body(name=prefix, pos=list(pos))
    body.add_freejoint(name=f"{prefix}_root")
    body.explicitinertial = True
    body.mass = p.mass
    body.inertia = list(p.inertia)
    body.ipos = [0.0, 0.0, 0.0]

    h = p.collision_half_extent
    body.add_geom(
        name=f"{prefix}_collision",
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[h, h, p.body_height / 2.0],
        rgba=[0, 0, 0, 0],
        contype=contype,
        conaffinity=conaffinity,
        group=3,
        mass=0.0,
    )
    vis = {"contype": 0, "conaffinity": 0, "group": 1, "mass": 0.0}
    core = 0.3 * p.arm
    body.add_geom(
        type=mujoco.mjtGeom.mjGEOM_BOX,
        size=[core, 0.6 * core, p.body_height / 3.0],
        rgba=list(rgba),
        **vis,
    )
    arm_w = max(0.004, 0.06 * p.arm)
    for i, (cx, cy) in enumerate(_ROTOR_XY):
        x, y = cx * p.arm, cy * p.arm
        body.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            fromto=[0.0, 0.0, 0.0, x, y, 0.0],
            size=[arm_w, 0, 0],
            rgba=list(rgba),
            **vis,
        )
        front = cx > 0
        body.add_geom(
            type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            pos=[x, y, p.body_height / 3.0],
            size=[p.prop_radius, 0.002, 0],
            rgba=[0.9, 0.25, 0.2, 0.6] if front else [0.3, 0.3, 0.35, 0.6],
            **vis,
        )
        # sites sit inside the airframe geoms: group 3 (not rendered by default) saves a
        # draw call each on every camera frame
        body.add_site(name=f"{prefix}_rotor{i}", pos=[x, y, 0.0], size=[0.005, 0, 0], group=3)
    body.add_site(name=f"{prefix}_imu", pos=[0.0, 0.0, 0.0], size=[0.005, 0, 0], group=3)

    tilt = p.fpv_tilt_deg if fpv_tilt_deg is None else float(fpv_tilt_deg)
    body.add_camera(
        name="fpv",
        pos=[core + 0.002, 0.0, p.body_height / 3.0],
        xyaxes=_camera_xyaxes_fpv(tilt),
        fovy=p.fpv_fovy if fpv_fovy is None else float(fpv_fovy),
    )
    body.add_camera(
        name="down",
        pos=[0.0, 0.0, -p.body_height / 2.0],
        xyaxes=[0.0, -1.0, 0.0, 1.0, 0.0, 0.0],
        fovy=90.0,
    )

    # A chase camera for render(): follows the position, keeps a world-fixed orientation.
    back = 8.0 * p.radius
    t = math.radians(20.0)
    body.add_camera(
        name="chase",
        mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACK,
        pos=[-back * math.cos(t), 0.0, back * math.sin(t)],
        xyaxes=[0.0, -1.0, 0.0, math.sin(t), 0.0, math.cos(t)],
        fovy=60.0,
    )

    filt = mujoco.mjtDyn.mjDYN_FILTEREXACT
    site_trn = mujoco.mjtTrn.mjTRN_SITE
    if action_mode == "ctbr":
        act = spec.add_actuator(name=f"{prefix}_thrust", target=f"{prefix}_imu", trntype=site_trn)
        act.dyntype = filt
        act.dynprm[0] = p.motor_tau
        act.gainprm[0] = p.max_thrust
        act.gear = [0, 0, 1, 0, 0, 0]
        act.ctrllimited = True
        act.ctrlrange = [0.0, 1.0]
        for k, axis in enumerate("xyz"):
            a = spec.add_actuator(
                name=f"{prefix}_rate_{axis}", target=f"{prefix}_imu", trntype=site_trn
            )
            kv = p.rate_gains[k]
            a.dyntype = filt
            a.dynprm[0] = p.motor_tau
            a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
            a.gainprm[0] = kv
            a.biastype = mujoco.mjtBias.mjBIAS_AFFINE
            a.biasprm[0:3] = [0.0, 0.0, -kv]
            gear = [0.0] * 6
            gear[3 + k] = 1.0
            a.gear = gear
            a.ctrllimited = True
            a.ctrlrange = [-p.max_rate[k], p.max_rate[k]]
            a.forcelimited = True
            a.forcerange = [-p.torque_limits[k], p.torque_limits[k]]
    else:
        for i in range(4):
            a = spec.add_actuator(
                name=f"{prefix}_motor{i}", target=f"{prefix}_rotor{i}", trntype=site_trn
            )
            a.dyntype = filt
            a.dynprm[0] = p.motor_tau
            a.gainprm[0] = p.max_motor_thrust
            a.gear = [0, 0, 1, 0, 0, _ROTOR_YAW_SIGN[i] * p.km / p.kf]
            a.ctrllimited = True
            a.ctrlrange = [0.0, 1.0]
    for k, axis in enumerate("xyz"):
        a = spec.add_actuator(
            name=f"{prefix}_drag_{axis}", target=f"{prefix}_imu", trntype=site_trn
        )
        a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        a.gainprm[0] = p.drag[k]
        a.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        a.biasprm[0:3] = [0.0, 0.0, -p.drag[k]]
        gear = [0.0] * 6
        gear[k] = 1.0
        a.gear = gear
        a.ctrllimited = False
    return body


class Quadrotor:
    """Handle on a compiled model holding a quad from ``add_quadrotor``.

    Caches ids and slices so the per-step work is a few vector ops. Normalized actions in
    [-1, 1] map affinely to the physical commands in ``action_layout()`` (thrust in N and body
    rates in rad/s for CTBR, rotor speeds in rpm for motors). The physical map uses the
    *nominal* constants, as firmware would: randomized kf/mass/thrust scale change what a
    command does, not the command.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        params: QuadrotorParams | str = "crazyflie",
        action_mode: str = "ctbr",
        prefix: str = "quad",
    ):
        self.p = get_preset(params)
        self.action_mode = _check_mode(action_mode)
        self.prefix = prefix
        self.bind(model)
        mr = np.asarray(self.p.max_rate)
        if action_mode == "ctbr":
            self._a_scale = np.array([0.5, *mr])
            self._a_offset = np.array([0.5, 0.0, 0.0, 0.0])
        else:
            self._a_scale = np.full(4, 0.5)
            self._a_offset = np.full(4, 0.5)

    def bind(self, model: mujoco.MjModel) -> None:
        """(Re)read ids after a (re)compile."""
        pre = self.prefix
        self.model = model
        self.body_id = model.body(pre).id
        jnt = model.joint(f"{pre}_root")
        self.qpos_adr = int(jnt.qposadr[0])
        self.qvel_adr = int(jnt.dofadr[0])
        self.collision_geom = model.geom(f"{pre}_collision").id
        names = (
            [f"{pre}_thrust", f"{pre}_rate_x", f"{pre}_rate_y", f"{pre}_rate_z"]
            if self.action_mode == "ctbr"
            else [f"{pre}_motor{i}" for i in range(4)]
        )
        try:
            self.cmd_ids = np.array([model.actuator(n).id for n in names])
        except KeyError as e:
            raise ValueError(
                f"model has no actuators for action_mode={self.action_mode!r} (missing {e}); "
                "build it with add_quadrotor(..., action_mode=...) of the same mode"
            ) from None
        self.drag_ids = np.array([model.actuator(f"{pre}_drag_{a}").id for a in "xyz"])
        self.act_adr = np.array([model.actuator_actadr[i] for i in self.cmd_ids])
        self._cmd_slice = as_slice(self.cmd_ids)
        self._drag_slice = as_slice(self.drag_ids)
        self._act_slice = as_slice(self.act_adr)
        q, v = self.qpos_adr, self.qvel_adr
        self.pos_slice, self.quat_slice = slice(q, q + 3), slice(q + 3, q + 7)
        self.vel_slice, self.angvel_slice = slice(v, v + 3), slice(v + 3, v + 6)

    def bind_data(self, data: mujoco.MjData) -> None:
        """Cache views into ``data`` for the allocation-free fast path (``apply``, ``v_*``).

        Views stay valid for the life of ``data``; call again after creating a new MjData.
        """
        self.data = data
        self.v_pos = data.qpos[self.pos_slice]
        self.v_quat = data.qpos[self.quat_slice]
        self.v_vel = data.qvel[self.vel_slice]
        self.v_angvel = data.qvel[self.angvel_slice]
        q, v = self.qpos_adr, self.qvel_adr
        self.v_qpos = data.qpos[q : q + 7]  # pos + quat
        self.v_qvel = data.qvel[v : v + 6]  # linear + angular velocity
        self._rot_key: list[float] | None = None
        self._rot_val: list[float] = []
        self._ctrl = data.ctrl
        self._cmd_idx = [int(i) for i in self.cmd_ids]
        self._drag_idx = [int(i) for i in self.drag_ids]
        self._scale_l = self._a_scale.tolist()
        self._offset_l = self._a_offset.tolist()

    def apply(self, action: Sequence[float]) -> None:
        """Fast ``write_action`` for the bound data: ``action`` is 4 floats (a list is fastest)."""
        c, idx, sc, of = self._ctrl, self._cmd_idx, self._scale_l, self._offset_l
        if self.action_mode == "ctbr":
            for i in range(4):
                c[idx[i]] = action[i] * sc[i] + of[i]
        else:
            for i in range(4):
                u = action[i] * sc[i] + of[i]
                c[idx[i]] = u * u

    def rot_list(self, quat: list[float] | None = None) -> list[float]:
        """Current body-to-world rotation (row-major, 9 floats) of the bound data, from the
        quaternion in ``qpos`` (``xmat`` lags it by a substep after ``mj_step``; ``quat``:
        that quaternion if the caller has already read it). Cached on the quaternion's
        value, so the observation and the next step's wind share one computation; treat
        the returned list as read-only."""
        qt = self.v_quat.tolist() if quat is None else quat
        if qt != self._rot_key:
            self._rot_key = qt
            self._rot_val = quat_to_rot(*qt)
        return self._rot_val

    def apply_wind(self, wind: Sequence[float]) -> None:
        """Fast ``set_wind`` for the bound data (``wind``: 3 floats, world frame), in the
        body axes of the current attitude."""
        r = self.rot_list()
        wx, wy, wz = wind
        c, idx = self._ctrl, self._drag_idx
        for k in range(3):  # (R^T w)_k = column k of R dotted with w
            c[idx[k]] = r[k] * wx + r[3 + k] * wy + r[6 + k] * wz

    # ---- actions ----
    def action_layout(self) -> list[tuple[str, str, float, float]]:
        p = self.p
        if self.action_mode == "ctbr":
            return [
                ("collective_thrust", "N", 0.0, p.max_thrust),
                ("roll_rate", "rad/s", -p.max_rate[0], p.max_rate[0]),
                ("pitch_rate", "rad/s", -p.max_rate[1], p.max_rate[1]),
                ("yaw_rate", "rad/s", -p.max_rate[2], p.max_rate[2]),
            ]
        return [(f"motor{i}_speed", "rpm", 0.0, p.max_rpm) for i in range(4)]

    def action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        """Normalized action -> actuator ctrl of the four command actuators."""
        u = action * self._a_scale + self._a_offset
        if self.action_mode == "motors":
            u = u * u  # ctrl is the fraction of max thrust = (w / w_max)^2
        return u

    def write_action(self, data: mujoco.MjData, action: np.ndarray) -> None:
        data.ctrl[self._cmd_slice] = self.action_to_ctrl(action)

    def hover_action(self) -> np.ndarray:
        """Normalized action that hovers at nominal parameters."""
        f = self.p.hover_thrust_fraction
        if self.action_mode == "ctbr":
            return np.array([2.0 * f - 1.0, 0.0, 0.0, 0.0])
        return np.full(4, 2.0 * math.sqrt(f) - 1.0)

    def thrust_action(self, thrust_n: float) -> float:
        """Normalized CTBR thrust action for a collective thrust in N (nominal map, clipped)."""
        return float(np.clip(2.0 * thrust_n / self.p.max_thrust - 1.0, -1.0, 1.0))

    def set_wind(self, data: mujoco.MjData, wind_world: np.ndarray) -> None:
        """Air velocity in body axes as the drag actuators' reference (call once per step)."""
        data.ctrl[self._drag_slice] = np.asarray(wind_world, dtype=float) @ self.rot(data)

    def thrust(self, data: mujoco.MjData) -> float:
        """Current total thrust (N) along body z."""
        f = data.actuator_force[self._cmd_slice]
        return float(f[0]) if self.action_mode == "ctbr" else float(f.sum())

    # ---- state ----
    def pos(self, data: mujoco.MjData) -> np.ndarray:
        return data.qpos[self.pos_slice].copy()

    def vel(self, data: mujoco.MjData) -> np.ndarray:
        """World-frame linear velocity (m/s)."""
        return data.qvel[self.vel_slice].copy()

    def rot(self, data: mujoco.MjData) -> np.ndarray:
        """Body-to-world rotation matrix (3x3) of the current ``qpos`` (not the ``xmat`` of
        the last ``mj_step``, which is one substep old)."""
        return np.array(quat_to_rot(*data.qpos[self.quat_slice].tolist())).reshape(3, 3)

    def body_rates(self, data: mujoco.MjData) -> np.ndarray:
        """Angular velocity in body axes (rad/s) — MuJoCo's free-joint convention."""
        return data.qvel[self.angvel_slice].copy()

    def reset(
        self,
        data: mujoco.MjData,
        pos: Sequence[float],
        yaw: float = 0.0,
        vel: Sequence[float] = (0.0, 0.0, 0.0),
        thrust_fraction: float | None = None,
    ) -> None:
        """Place the quad level at ``pos`` heading ``yaw``; motor states at hover (or given)."""
        data.qpos[self.pos_slice] = pos
        data.qpos[self.quat_slice] = [math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)]
        data.qvel[self.vel_slice] = vel
        data.qvel[self.angvel_slice] = 0.0
        f = self.p.hover_thrust_fraction if thrust_fraction is None else thrust_fraction
        if self.action_mode == "ctbr":
            data.act[self.act_adr] = [f, 0.0, 0.0, 0.0]
            data.ctrl[self.cmd_ids] = [f, 0.0, 0.0, 0.0]
        else:
            data.act[self.act_adr] = f
            data.ctrl[self.cmd_ids] = f

    # ---- randomizable dynamics ----
    def param_defs(self, prefix: str = "dynamics.quad") -> list[Any]:
        """ParamDefs for every physical constant that lives in model fields.

        Each ``apply`` writes absolute values computed from the nominal constants, so applying
        in any order or repeatedly is safe. Wind (``dynamics.quad.wind``) and ground effect are
        read by the task; latency and generic state noise come from the base class.
        """
        from simenvs.core import ParamDef

        p, b = self.p, self.body_id
        cmd, drag = self.cmd_ids.copy(), self.drag_ids.copy()
        ctbr = self.action_mode == "ctbr"
        inertia0 = np.asarray(p.inertia, dtype=float)
        tl = np.asarray(p.torque_limits)
        yaw_sign = _ROTOR_YAW_SIGN.copy()

        dof = self.qvel_adr

        # MuJoCo 4 caches the free joint's diagonal mass matrix in dof_M0 (and the subtree mass)
        # at compile time: update them with the body, or the dynamics keep the old values.
        def set_mass(m: Any, v: Any) -> None:
            m.body_mass[b] = v
            if hasattr(m, "dof_M0"):
                m.dof_M0[dof : dof + 3] = v
            if hasattr(m, "body_subtreemass"):
                m.body_subtreemass[b] = v

        def set_inertia(m: Any, v: Any) -> None:
            m.body_inertia[b] = inertia0 * v
            if hasattr(m, "dof_M0"):
                m.dof_M0[dof + 3 : dof + 6] = inertia0 * v

        def set_kf(m: Any, v: Any) -> None:
            r = float(v) / p.kf
            if ctbr:
                m.actuator_gear[cmd[0], 2] = r
                m.actuator_forcerange[cmd[1:3], 0] = -tl[:2] * r
                m.actuator_forcerange[cmd[1:3], 1] = tl[:2] * r
            else:
                m.actuator_gear[cmd, 2] = r

        def set_km(m: Any, v: Any) -> None:
            if ctbr:
                r = float(v) / p.km
                m.actuator_forcerange[cmd[3]] = [-tl[2] * r, tl[2] * r]
            else:
                m.actuator_gear[cmd, 5] = yaw_sign * float(v) / p.kf

        def set_tau(m: Any, v: Any) -> None:
            m.actuator_dynprm[cmd, 0] = v

        def set_thrust_scale(m: Any, v: Any) -> None:
            base = p.max_thrust if ctbr else p.max_motor_thrust
            m.actuator_gainprm[cmd[0] if ctbr else cmd, 0] = base * float(v)

        def set_drag(m: Any, v: Any) -> None:
            d = np.asarray(v, dtype=float)
            m.actuator_gainprm[drag, 0] = d
            m.actuator_biasprm[drag, 2] = -d

        q = prefix
        return [
            ParamDef(f"{q}.mass", p.mass, 0.85 * p.mass, 1.15 * p.mass, unit="kg",
                     doc="airframe mass", apply=set_mass),
            ParamDef(f"{q}.inertia_scale", 1.0, 0.7, 1.3, unit="1",
                     doc="multiplies the principal inertia", apply=set_inertia),
            ParamDef(f"{q}.kf", p.kf, 0.8 * p.kf, 1.2 * p.kf, unit="N/rpm^2",
                     doc="thrust coefficient: thrust = kf w^2", apply=set_kf),
            ParamDef(f"{q}.km", p.km, 0.7 * p.km, 1.3 * p.km, unit="N m/rpm^2",
                     doc="yaw torque coefficient (CTBR: scales the yaw torque limit)",
                     apply=set_km),
            ParamDef(f"{q}.motor_tau", p.motor_tau, 0.5 * p.motor_tau, 2.0 * p.motor_tau,
                     unit="s", doc="first-order motor time constant", apply=set_tau),
            ParamDef(f"{q}.thrust_scale", 1.0, 0.7, 1.05, unit="1",
                     doc="available thrust (battery sag < 1)", apply=set_thrust_scale),
            ParamDef(f"{q}.drag", np.asarray(p.drag), np.zeros(3), 3.0 * np.asarray(p.drag),
                     shape=(3,), unit="N s/m", doc="linear drag along body x, y, z",
                     apply=set_drag),
            ParamDef(f"{q}.wind", np.zeros(3), np.full(3, -3.0), np.full(3, 3.0), shape=(3,),
                     unit="m/s", doc="constant wind (world frame), acts through the drag"),
        ]  # fmt: skip
