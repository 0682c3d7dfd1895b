"""The simenvs quadrotor model re-implemented for PyBullet.

Same constants (``simenvs.robots.quadrotor.PRESETS``), same randomizable parameters
(``dynamics.quad.*``), same command semantics as the MuJoCo model, which runs its motor
model inside MuJoCo's actuators; here it runs in Python once per physics substep and
reaches PyBullet as an external force and torque on one rigid body:

* motor lag: every command goes through a first-order filter with the motor time constant,
  integrated exactly (``act += (ctrl - act) (1 - exp(-dt / tau))``), force from the state
  *before* the update, like MuJoCo's ``filterexact``;
* CTBR: collective thrust along body z; body-rate P loop ``kv (w_ref - w)`` with
  ``kv = I_nominal / rate_tau``, each torque clipped to its limit (limits scale with kf / km);
* motors: four rotor thrusts ``kf w^2`` at the rotor positions, yaw reaction ``+-km w^2``;
* linear body drag ``D (v_wind - v)`` along body axes (wind in body axes, set per control step).

Integration follows the MuJoCo model's integrator. With semi-implicit Euler (what
``add_quadrotor`` selects) the wrench is applied as is and PyBullet's own semi-implicit step
matches MuJoCo's. With ``implicit=True`` (for models compiled with ``implicitfast``) the
velocity feedback terms are integrated the way MuJoCo's implicit integrators do: an
unclipped rate torque ``kv (w_ref - w)`` and the gyroscopic term act through the effective
inertia ``I - dt dF/dw``, the drag through the effective mass ``m + dt D``; the wrench handed
to PyBullet is the one whose explicit step lands on the same velocities. Either way the two
engines then differ by their physics (rigid-body integration, quaternion update, contacts),
not by the discretisation of the controller. Everything else is PyBullet's own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from simenvs.robots.quadrotor import (
    _ROTOR_XY,
    _ROTOR_YAW_SIGN,
    GRAVITY,
    QuadrotorParams,
    get_preset,
)

__all__ = ["QuadConstants", "QuadDynamics", "BulletQuadrotor", "quat_to_mat", "quat_rows"]


@dataclass(frozen=True)
class QuadConstants:
    """Per-episode physical constants of the quad, in MuJoCo actuator terms.

    ``cmd_gain`` is the actuator gain (force per unit motor state, what MuJoCo reports as
    ``actuator_force``); ``thrust_ratio`` = kf / kf_nominal multiplies it along body z (the
    MuJoCo actuator gear); ``yaw_gear`` (motors) is the reaction torque per unit rotor force.
    """

    action_mode: str
    mass: float
    inertia: np.ndarray  # (3,) principal, body axes
    motor_tau: float
    cmd_gain: np.ndarray  # (4,)
    thrust_ratio: float
    yaw_gear: np.ndarray  # (4,) motors only
    rate_kv: np.ndarray  # (3,) ctbr only
    torque_limit: np.ndarray  # (3,) ctbr only
    drag: np.ndarray  # (3,)
    rotor_pos: np.ndarray  # (4, 3) body frame

    @classmethod
    def from_values(
        cls,
        params: QuadrotorParams | str,
        action_mode: str,
        values: Mapping[str, Any] | None = None,
        prefix: str = "dynamics.quad",
    ) -> QuadConstants:
        """Constants for nominal ``params`` with the episode's ``dynamics.quad.*`` values."""
        p = get_preset(params)
        if action_mode not in ("ctbr", "motors"):
            raise ValueError(f"unknown action_mode {action_mode!r}; choose from ['ctbr', 'motors']")
        v = dict(values or {})

        def get(name: str, default: Any) -> Any:
            return v.get(f"{prefix}.{name}", default)

        kf = float(get("kf", p.kf))
        km = float(get("km", p.km))
        ts = float(get("thrust_scale", 1.0))
        ctbr = action_mode == "ctbr"
        base = p.max_thrust if ctbr else p.max_motor_thrust
        gain = np.zeros(4)
        if ctbr:
            gain[0] = base * ts
        else:
            gain[:] = base * ts
        tl = np.asarray(p.torque_limits, dtype=float)
        limit = np.array([tl[0] * kf / p.kf, tl[1] * kf / p.kf, tl[2] * km / p.km])
        rotor = np.zeros((4, 3))
        rotor[:, :2] = _ROTOR_XY * p.arm
        return cls(
            action_mode=action_mode,
            mass=float(get("mass", p.mass)),
            inertia=np.asarray(p.inertia, dtype=float) * float(get("inertia_scale", 1.0)),
            motor_tau=float(get("motor_tau", p.motor_tau)),
            cmd_gain=gain,
            thrust_ratio=kf / p.kf,
            yaw_gear=_ROTOR_YAW_SIGN * km / p.kf,
            rate_kv=np.asarray(p.rate_gains, dtype=float),
            torque_limit=limit,
            drag=np.asarray(get("drag", p.drag), dtype=float).reshape(3).copy(),
            rotor_pos=rotor,
        )


_DIAG = (np.arange(3), np.arange(3))


def _skew(x: np.ndarray) -> np.ndarray:
    return np.array([[0.0, -x[2], x[1]], [x[2], 0.0, -x[0]], [-x[1], x[0], 0.0]])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array(
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    )


def quat_rows(x: float, y: float, z: float, w: float) -> list[float]:
    """Rotation matrix (row-major, 9 floats) of a unit quaternion in PyBullet order (x, y, z, w)."""
    xx, yy, zz = x * x, y * y, z * z
    xy, xz, yz, wx, wy, wz = x * y, x * z, y * z, w * x, w * y, w * z
    return [
        1 - 2 * (yy + zz), 2 * (xy - wz), 2 * (xz + wy),
        2 * (xy + wz), 1 - 2 * (xx + zz), 2 * (yz - wx),
        2 * (xz - wy), 2 * (yz + wx), 1 - 2 * (xx + yy),
    ]  # fmt: skip


def quat_to_mat(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Rotation matrix of a unit quaternion given in PyBullet order (x, y, z, w)."""
    return np.array(quat_rows(x, y, z, w)).reshape(3, 3)


class QuadDynamics:
    """Motor states, commands and the per-substep wrench (engine independent).

    ``set_commands`` once per control step (actuator ctrl, wind in body axes, external world
    force/torque such as ground effect); ``wrench(R, v, w)`` per substep returns the force
    and torque (world frame) a semi-implicit rigid-body integrator must apply on top of
    gravity for one step of length ``dt`` (with ``implicit``: the wrench that reproduces
    MuJoCo's implicit treatment of the rate loop, drag and gyroscopic term, see the module
    docstring), then advances the motor states. ``force``/``drag_force`` are the last actuator
    forces in MuJoCo's ``actuator_force`` terms. State is kept in python floats: numpy costs
    more than the arithmetic on 3-vectors, and this runs 240 times per simulated second.
    """

    def __init__(self, const: QuadConstants, dt: float, implicit: bool = False):
        self.dt = float(dt)
        self.implicit = bool(implicit)
        self.set_constants(const)
        self._a = [0.0] * 4  # motor (actuator) states
        self._ctrl: tuple[float, ...] = (0.0,) * 4
        self._wind: tuple[float, ...] = (0.0,) * 3  # drag reference: air velocity, body axes
        self._ef: tuple[float, ...] = (0.0,) * 3  # world-frame external force
        self._et: tuple[float, ...] = (0.0,) * 3  # world-frame external torque
        self._force: tuple[float, ...] = (0.0,) * 4
        self._drag_f: tuple[float, ...] = (0.0,) * 3

    # numpy views of the state, for callers
    @property
    def act(self) -> np.ndarray:
        return np.array(self._a)

    @property
    def ctrl(self) -> np.ndarray:
        return np.array(self._ctrl)

    @property
    def wind_body(self) -> np.ndarray:
        return np.array(self._wind)

    @property
    def force(self) -> np.ndarray:
        return np.array(self._force)

    @property
    def drag_force(self) -> np.ndarray:
        return np.array(self._drag_f)

    def set_commands(
        self,
        ctrl: Sequence[float] | None = None,
        wind_body: Sequence[float] | None = None,
        ext_force: Sequence[float] | None = None,
        ext_torque: Sequence[float] | None = None,
    ) -> None:
        """Commands held for the coming substeps (None keeps the current value)."""
        if ctrl is not None:
            self._ctrl = tuple(float(x) for x in ctrl)
        if wind_body is not None:
            self._wind = tuple(float(x) for x in wind_body)
        if ext_force is not None:
            self._ef = tuple(float(x) for x in ext_force)
        if ext_torque is not None:
            self._et = tuple(float(x) for x in ext_torque)

    def set_constants(self, const: QuadConstants) -> None:
        self.c = const
        self._alpha = 1.0 - math.exp(-self.dt / const.motor_tau)
        m, dt = const.mass, self.dt
        self._lin_scale = m / (m + dt * const.drag)  # effective-mass ratio per body axis
        self._g = np.array([0.0, 0.0, -GRAVITY * m])
        # python floats for the per-substep path (numpy is slow on 3-vectors)
        self._ctbr = const.action_mode == "ctbr"
        self._drag = const.drag.tolist()
        self._gain = const.cmd_gain.tolist()
        self._kv = const.rate_kv.tolist()
        self._lim = const.torque_limit.tolist()
        self._yaw = const.yaw_gear.tolist()
        self._rx = const.rotor_pos[:, 0].tolist()
        self._ry = const.rotor_pos[:, 1].tolist()

    def reset(
        self,
        act: Sequence[float],
        ctrl: Sequence[float] | None = None,
        force: Sequence[float] | None = None,
    ) -> None:
        """Motor states (and commands, default: the states); wind and external wrench zero."""
        self._a = [float(x) for x in act]
        self.set_commands(self._a if ctrl is None else ctrl, (0.0,) * 3, (0.0,) * 3, (0.0,) * 3)
        self._force = (0.0,) * 4 if force is None else tuple(float(x) for x in force)

    def wrench(
        self, R: np.ndarray, v_world: np.ndarray, w_body: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """World force and torque for this substep (numpy in and out); advances the motors."""
        f, t = self.wrench_rows(
            np.asarray(R, dtype=float).reshape(9).tolist(),
            np.asarray(v_world, dtype=float).tolist(),
            np.asarray(w_body, dtype=float).tolist(),
        )
        return np.array(f), np.array(t)

    def wrench_rows(
        self, r: list[float], v: Sequence[float], w: Sequence[float]
    ) -> tuple[list[float], list[float]]:
        """``wrench`` on python floats: ``r`` is R row-major (9), ``v`` world velocity,
        ``w`` body rates; returns (force, torque) lists in the world frame."""
        r00, r01, r02, r10, r11, r12, r20, r21, r22 = r
        vx, vy, vz = v
        wx, wy, wz = w
        a = self._a
        ax, ay, az = self._wind
        dxx, dyy, dzz = self._drag
        fx = dxx * (ax - (r00 * vx + r10 * vy + r20 * vz))
        fy = dyy * (ay - (r01 * vx + r11 * vy + r21 * vz))
        fz = dzz * (az - (r02 * vx + r12 * vy + r22 * vz))
        self._drag_f = (fx, fy, fz)
        ratio = self.c.thrust_ratio
        if self._ctbr:
            thrust = self._gain[0] * a[0]
            kx, ky, kz = self._kv
            lx, ly, lz = self._lim
            rx, ry, rz = kx * (a[1] - wx), ky * (a[2] - wy), kz * (a[3] - wz)
            tx, ty, tz = min(max(rx, -lx), lx), min(max(ry, -ly), ly), min(max(rz, -lz), lz)
            self._force = (thrust, tx, ty, tz)
            fz += thrust * ratio
            damp = (kx if tx == rx else 0.0, ky if ty == ry else 0.0, kz if tz == rz else 0.0)
        else:
            g, yg, px, py = self._gain, self._yaw, self._rx, self._ry
            fr = [g[i] * a[i] for i in range(4)]
            self._force = tuple(fr)
            fzs = [f * ratio for f in fr]
            fz += fzs[0] + fzs[1] + fzs[2] + fzs[3]
            tx = py[0] * fzs[0] + py[1] * fzs[1] + py[2] * fzs[2] + py[3] * fzs[3]
            ty = -(px[0] * fzs[0] + px[1] * fzs[1] + px[2] * fzs[2] + px[3] * fzs[3])
            tz = yg[0] * fr[0] + yg[1] * fr[1] + yg[2] * fr[2] + yg[3] * fr[3]
            damp = (0.0, 0.0, 0.0)
        # motor lag (after the force, like MuJoCo's act update)
        al, c = self._alpha, self._ctrl
        self._a = [a[i] + (c[i] - a[i]) * al for i in range(4)]
        if self.implicit:
            R = np.array(r).reshape(3, 3)
            f, t = self._implicit(R, np.array(w), np.array((fx, fy, fz)), np.array((tx, ty, tz)),
                                  np.array(damp))  # fmt: skip
            return f.tolist(), t.tolist()
        ex, ey, ez = self._ef
        qx, qy, qz = self._et
        force = [
            r00 * fx + r01 * fy + r02 * fz + ex,
            r10 * fx + r11 * fy + r12 * fz + ey,
            r20 * fx + r21 * fy + r22 * fz + ez,
        ]
        torque = [
            r00 * tx + r01 * ty + r02 * tz + qx,
            r10 * tx + r11 * ty + r12 * tz + qy,
            r20 * tx + r21 * ty + r22 * tz + qz,
        ]
        return force, torque

    def _implicit(
        self, R: np.ndarray, w_body: np.ndarray, f_b: np.ndarray, tau: np.ndarray, damp: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        c, dt = self.c, self.dt
        # linear: total force through the effective mass (m + dt D); the engine adds gravity
        f_tot = R @ f_b + self._g + np.array(self._ef)
        f_app = R @ (self._lin_scale * (f_tot @ R)) - self._g
        # angular: MuJoCo solves (I - dt dF/dw) dw = dt F with F = torques + gyroscopic term;
        # the engine adds its own gyroscopic term, so hand it the torque whose explicit step
        # lands on the same dw
        inertia = c.inertia
        iw = inertia * w_body
        gyro = -_cross(w_body, iw)
        m = _skew(w_body) * inertia - _skew(iw)  # -(dF_gyro/dw)
        m *= dt
        m[_DIAG] += inertia + dt * damp
        t_b = tau + np.array(self._et) @ R
        t_app = inertia * np.linalg.solve(m, t_b + gyro) - gyro
        return f_app, R @ t_app


class BulletQuadrotor:
    """The quad as one PyBullet rigid body driven by ``QuadDynamics``.

    The collision box has the MuJoCo geom's size; ``visual`` is an optional visual shape id;
    ``implicit`` selects the implicit-integrator wrench (see ``QuadDynamics``). Sleeping and
    PyBullet's default damping are off.
    """

    def __init__(
        self,
        client: int,
        params: QuadrotorParams | str,
        action_mode: str,
        dt: float,
        visual: int = -1,
        friction: float = 1.0,
        implicit: bool = False,
    ):
        import pybullet as pb

        self.pb, self.client = pb, client
        self.p = get_preset(params)
        self.action_mode = action_mode
        self.dyn = QuadDynamics(QuadConstants.from_values(self.p, action_mode), dt, implicit)
        h = self.p.collision_half_extent
        col = pb.createCollisionShape(
            pb.GEOM_BOX, halfExtents=[h, h, self.p.body_height / 2.0], physicsClientId=client
        )
        self.body = pb.createMultiBody(
            self.p.mass, col, visual, [0, 0, 1], [0, 0, 0, 1], physicsClientId=client
        )
        pb.changeDynamics(
            self.body,
            -1,
            linearDamping=0.0,
            angularDamping=0.0,
            lateralFriction=friction,
            restitution=0.0,
            activationState=pb.ACTIVATION_STATE_DISABLE_SLEEPING,
            physicsClientId=client,
        )
        self.set_constants(self.dyn.c)

    def set_constants(self, const: QuadConstants) -> None:
        self.dyn.set_constants(const)
        self.pb.changeDynamics(
            self.body,
            -1,
            mass=const.mass,
            localInertiaDiagonal=list(const.inertia),
            physicsClientId=self.client,
        )

    def reset_state(
        self,
        pos: Sequence[float],
        quat_wxyz: Sequence[float],
        vel_world: Sequence[float],
        w_body: Sequence[float],
    ) -> None:
        w, x, y, z = (float(q) for q in quat_wxyz)
        R = quat_to_mat(x, y, z, w)
        pb, c = self.pb, self.client
        pb.resetBasePositionAndOrientation(self.body, list(pos), [x, y, z, w], physicsClientId=c)
        pb.resetBaseVelocity(
            self.body, list(vel_world), list(R @ np.asarray(w_body, float)), physicsClientId=c
        )

    def state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(pos, quat xyzw, R, world velocity, body rates)."""
        pb, c = self.pb, self.client
        pos, q = pb.getBasePositionAndOrientation(self.body, physicsClientId=c)
        v, w = pb.getBaseVelocity(self.body, physicsClientId=c)
        R = quat_to_mat(*q)
        return np.array(pos), np.array(q), R, np.array(v), np.asarray(w) @ R

    def substep(self) -> None:
        """Apply this substep's wrench and step the PyBullet world once."""
        pb, c, b = self.pb, self.client, self.body
        pos, q = pb.getBasePositionAndOrientation(b, physicsClientId=c)
        v, w = pb.getBaseVelocity(b, physicsClientId=c)
        r = quat_rows(*q)
        wb = (
            r[0] * w[0] + r[3] * w[1] + r[6] * w[2],
            r[1] * w[0] + r[4] * w[1] + r[7] * w[2],
            r[2] * w[0] + r[5] * w[1] + r[8] * w[2],
        )
        f, t = self.dyn.wrench_rows(r, v, wb)
        pb.applyExternalForce(b, -1, f, pos, pb.WORLD_FRAME, physicsClientId=c)
        pb.applyExternalTorque(b, -1, t, pb.WORLD_FRAME, physicsClientId=c)
        pb.stepSimulation(physicsClientId=c)
