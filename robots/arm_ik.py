"""Damped-least-squares differential IK with joint-limit clamping and a posture null space.

Why this form: a Cartesian action is a small pose delta per control step, so one or two
linearized steps from the last commanded joint vector reach it; damping keeps the step
bounded near singularities, and joints that would pass a limit are pinned there and the
step is re-solved without them (the clamping loop), so the remaining joints take over
instead of the target silently being lost. The null space pulls toward a home posture so
the redundant 7th DoF does not drift over an episode.

The solver keeps its own ``MjData`` (kinematics only), so solving never touches the
simulation state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import mujoco
import numpy as np

__all__ = ["DiffIK", "yaw_down_quat", "quat_yaw_down"]

# Orientation of the TCP site at yaw 0 with the gripper pointing down (matches the arm's home):
# site x = world y, site y = world x (finger axis), site z = world -z.
_R_DOWN = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


def _mat2quat(mat: np.ndarray) -> np.ndarray:
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.ascontiguousarray(mat, dtype=float).ravel())
    return q


_Q_DOWN = _mat2quat(_R_DOWN)
_Q_DOWN_F = tuple(float(v) for v in _Q_DOWN)  # Python floats: scalar math without numpy
_MAX, _ABS = np.maximum.reduce, np.abs
# the clip ufunc itself (np.clip wraps it in Python); numpy 1.x keeps it in np.core
_CLIP = (np._core if hasattr(np, "_core") else np.core).umath.clip


def yaw_down_quat(yaw: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of the gripper pointing down, finger axis at angle ``yaw``.

    Closed form of q_z(yaw) * q_down (this runs every control step)."""
    c, s = math.cos(0.5 * yaw), math.sin(0.5 * yaw)
    w, x, y, z = _Q_DOWN_F
    return np.array([c * w - s * z, c * x - s * y, c * y + s * x, c * z + s * w])


def quat_yaw_down(mat: np.ndarray) -> float:
    """Yaw of the finger axis (site y) of a TCP rotation matrix, projected to the table plane."""
    m = np.asarray(mat).reshape(3, 3)
    return float(np.arctan2(m[1, 1], m[0, 1]))


class DiffIK:
    """Differential IK for the position and orientation of one site."""

    def __init__(
        self,
        model: mujoco.MjModel,
        site: str,
        joints: Sequence[str],
        damping: float = 0.03,
        posture: np.ndarray | None = None,
        posture_gain: float = 0.05,
        limit_margin: float = 0.03,
        max_joint_step: float = 0.25,
        rot_weight: float = 0.5,
    ):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site)
        if self.site_id < 0:
            raise ValueError(f"unknown site {site!r}")
        jids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints]
        if min(jids) < 0:
            raise ValueError(f"unknown joint in {list(joints)!r}")
        self.qadr = model.jnt_qposadr[jids]
        self.dadr = model.jnt_dofadr[jids]
        self.lower = model.jnt_range[jids, 0] + limit_margin
        self.upper = model.jnt_range[jids, 1] - limit_margin
        n = len(jids)
        self.posture = np.zeros(n) if posture is None else np.asarray(posture, float).copy()
        self._damp_vec = np.zeros(6)
        self._gain_vec = np.zeros(n)
        self.posture_gain = posture_gain
        self.damping2 = damping**2
        self.max_joint_step = max_joint_step
        self.w_task = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        # A power-of-two weight is applied exactly by mju_quat2Vel's division by "dt" (it
        # scales the rotation error by 1/dt): one call less per solve, the same bits.
        self._rot_folded = rot_weight > 0 and math.frexp(rot_weight)[0] == 0.5
        self._rot_dt = 1.0 / rot_weight if self._rot_folded else 1.0
        self._jac = np.zeros((6, model.nv))
        self._jacp, self._jacr = self._jac[:3], self._jac[3:]  # contiguous row views
        self._contiguous = bool(np.all(np.diff(self.dadr) == 1))
        self._cols = slice(int(self.dadr[0]), int(self.dadr[-1]) + 1) if self._contiguous else None
        self._qerr = np.zeros(4)
        self._qcur = np.zeros(4)
        self._qneg = np.zeros(4)
        self._err = np.zeros(6)
        self._err_pos = self._err[:3]
        self._err_rot = self._err[3:]
        self._a = np.zeros((6, 6))
        self._a_diag = self._a.reshape(-1)[::7]  # view of the diagonal
        self._y = np.zeros(6)
        self._q = np.zeros(n)
        self._v = np.zeros(n)
        self._rhs = np.zeros(6)
        self._dq = np.zeros(n)
        self._qn = np.zeros(n)
        # Cached views into MjData (each attribute access builds a new array: ~0.5 us).
        qa = np.asarray(self.qadr)
        self._qpos = (
            self.data.qpos[int(qa[0]) : int(qa[-1]) + 1] if np.all(np.diff(qa) == 1) else None
        )
        self._site_xpos = self.data.site_xpos[self.site_id]
        self._site_xmat = self.data.site_xmat[self.site_id]
        self._w_col = self.w_task[:, None].copy()
        # Weighted Jacobian: weighted over all nv columns (one same-shape multiply), the arm's
        # columns used as a view; BLAS reads the view in place (leading dimension nv).
        self._w_full = np.repeat(self._w_col, model.nv, axis=1)
        self._jw_full = np.zeros((6, model.nv))
        self._jw = self._jw_full[:, self._cols] if self._contiguous else np.zeros((6, n))

    @property
    def posture_gain(self) -> float:
        return float(self._gain_vec[0])

    @posture_gain.setter
    def posture_gain(self, value: float) -> None:
        self._gain_vec[:] = value  # solve multiplies by this vector (a faster numpy path)

    @property
    def damping2(self) -> float:
        """Squared damping λ² added to the diagonal of J Jᵀ."""
        return float(self._damp_vec[0])

    @damping2.setter
    def damping2(self, value: float) -> None:
        self._damp_vec[:] = value

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position and rotation matrix (3x3) for joint vector ``q``."""
        d = self.data
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self.site_id].copy(), d.site_xmat[self.site_id].reshape(3, 3).copy()

    def solve(
        self, q: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray, iterations: int = 1
    ) -> np.ndarray:
        """Joint vector near ``q`` whose site pose approaches the target, within the limits.

        ``target_quat`` is (w, x, y, z). Returns a new array; ``q`` is not modified. One
        iteration suffices when the target moves a few cm per call from the last solution
        (the residual is corrected on the next call); use more for large jumps.

        With A = J Jᵀ + λ²I and posture step v, the damped step plus null-space posture term
        J⁺e + (I - J⁺J)v equals v + Jᵀ A⁻¹ (e - J v): one 6x6 Cholesky solve per pass.
        It runs every control step, between physics steps that evict the interpreter's and
        numpy's working set from the CPU caches: each numpy call there costs a few us, so
        the common path (no joint at a limit) is ~25 calls on preallocated buffers.
        """
        m, d = self.model, self.data
        lower, upper = self.lower, self.upper
        # the clamped start goes straight into the solver's qpos when the joints are adjacent
        qpos = self._qpos
        qc = qpos if qpos is not None else self._q
        _CLIP(q, lower, upper, qc)
        a, y, jw, qn, v = self._a, self._y, self._jw, self._qn, self._v
        q_next = None
        for it in range(iterations):
            if it:
                qc[:] = q_next
            if qpos is None:
                d.qpos[self.qadr] = qc
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = self._err  # pose error (world frame), rotation weighted by _rot_dt
            np.subtract(target_pos, self._site_xpos, self._err_pos)
            mujoco.mju_mat2Quat(self._qcur, self._site_xmat)
            mujoco.mju_negQuat(self._qneg, self._qcur)
            mujoco.mju_mulQuat(self._qerr, target_quat, self._qneg)
            mujoco.mju_quat2Vel(self._err_rot, self._qerr, self._rot_dt)
            if not self._rot_folded:
                err *= self.w_task
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site_id)
            if self._contiguous:
                np.multiply(self._jac, self._w_full, self._jw_full)  # jw: a view of it
            else:
                np.multiply(self._jac[:, self.dadr], self._w_col, jw)
            np.subtract(self.posture, qc, v)
            v *= self._gain_vec  # same-shape arrays: a scalar operand takes a colder path
            jf, vf = jw, v
            for _pass in range(3):  # clamping loop: pin joints that would cross a limit
                np.matmul(jf, jf.T, a)
                self._a_diag += self._damp_vec
                mujoco.mju_cholFactor(a, 0.0)
                rhs = self._rhs
                np.matmul(jf, vf, rhs)
                np.subtract(err, rhs, rhs)
                mujoco.mju_cholSolve(y, a, rhs)
                dq = self._dq
                np.matmul(jf.T, y, dq)
                dq += vf
                # the largest |step| in Python first: numpy's reduction machinery is cold here
                # and only a step over the bound needs numpy's value (NaN-propagating)
                if max(map(abs, dq.tolist())) > self.max_joint_step:
                    step = _MAX(_ABS(dq))
                    if step > self.max_joint_step:
                        dq *= self.max_joint_step / step
                np.add(qc, dq, qn)
                # clipped == unclipped <=> inside the limits (NaN compares unequal); lists:
                # numpy's reduction machinery is cold here
                q_next = _CLIP(qn, lower, upper)
                if q_next.tolist() == qn.tolist():
                    break
                over = (qn < lower) | (qn > upper)
                keep = ~over & (jf.any(axis=0))
                if not keep.any():
                    break
                jf = jw * keep  # pinned columns contribute nothing
                vf = vf * keep
        return q_next if q_next is not None else qc.copy()
