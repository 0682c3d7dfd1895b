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
_MAX, _ABS, _ALL = np.maximum.reduce, np.abs, np.logical_and.reduce


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
        self.posture_gain = posture_gain
        self.damping2 = damping**2
        self.max_joint_step = max_joint_step
        self.w_task = np.array([1.0, 1.0, 1.0, rot_weight, rot_weight, rot_weight])
        self._jac = np.zeros((6, model.nv))
        self._jacp, self._jacr = self._jac[:3], self._jac[3:]  # contiguous row views
        self._contiguous = bool(np.all(np.diff(self.dadr) == 1))
        self._cols = slice(int(self.dadr[0]), int(self.dadr[-1]) + 1) if self._contiguous else None
        self._qerr = np.zeros(4)
        self._qcur = np.zeros(4)
        self._qneg = np.zeros(4)
        self._err = np.zeros(6)
        self._a = np.zeros((6, 6))
        self._a_diag = self._a.reshape(-1)[::7]  # view of the diagonal
        self._y = np.zeros(6)
        # Cached views into MjData (each attribute access builds a new array: ~0.5 us).
        qa = np.asarray(self.qadr)
        self._qpos = (
            self.data.qpos[int(qa[0]) : int(qa[-1]) + 1] if np.all(np.diff(qa) == 1) else None
        )
        self._site_xpos = self.data.site_xpos[self.site_id]
        self._site_xmat = self.data.site_xmat[self.site_id]
        self._jw = np.zeros((6, n))
        self._w_col = self.w_task[:, None].copy()

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position and rotation matrix (3x3) for joint vector ``q``."""
        d = self.data
        d.qpos[self.qadr] = q
        mujoco.mj_kinematics(self.model, d)
        return d.site_xpos[self.site_id].copy(), d.site_xmat[self.site_id].reshape(3, 3).copy()

    def _error(self, target_pos: np.ndarray, target_quat: np.ndarray) -> np.ndarray:
        err = self._err
        np.subtract(target_pos, self._site_xpos, out=err[:3])
        mujoco.mju_mat2Quat(self._qcur, self._site_xmat)
        mujoco.mju_negQuat(self._qneg, self._qcur)
        mujoco.mju_mulQuat(self._qerr, target_quat, self._qneg)
        mujoco.mju_quat2Vel(err[3:], self._qerr, 1.0)
        return err

    def solve(
        self, q: np.ndarray, target_pos: np.ndarray, target_quat: np.ndarray, iterations: int = 1
    ) -> np.ndarray:
        """Joint vector near ``q`` whose site pose approaches the target, within the limits.

        ``target_quat`` is (w, x, y, z). Returns a new array; ``q`` is not modified. One
        iteration suffices when the target moves a few cm per call from the last solution
        (the residual is corrected on the next call); use more for large jumps.

        With A = J Jᵀ + λ²I and posture step v, the damped step plus null-space posture term
        J⁺e + (I - J⁺J)v equals v + Jᵀ A⁻¹ (e - J v): one 6x6 Cholesky solve per pass.
        It runs every control step, so it works in preallocated buffers (~20 us).
        """
        m, d = self.model, self.data
        lower, upper = self.lower, self.upper
        q = np.minimum(np.maximum(np.asarray(q, float), lower), upper)
        a, y, jw = self._a, self._y, self._jw
        for _ in range(iterations):
            if self._qpos is not None:
                self._qpos[:] = q
            else:
                d.qpos[self.qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err = self._error(target_pos, target_quat)
            err *= self.w_task
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site_id)
            jac = self._jac[:, self._cols] if self._contiguous else self._jac[:, self.dadr]
            np.multiply(jac, self._w_col, out=jw)
            v = self.posture_gain * (self.posture - q)
            jf = jw
            for _pass in range(3):  # clamping loop: pin joints that would cross a limit
                np.matmul(jf, jf.T, out=a)
                self._a_diag += self.damping2
                mujoco.mju_cholFactor(a, 0.0)
                mujoco.mju_cholSolve(y, a, err - jf @ v)
                dq = jf.T @ y
                dq += v
                # ufunc reductions directly: the array methods add ~1 us of wrappers each
                step = _MAX(_ABS(dq))
                if step > self.max_joint_step:
                    dq *= self.max_joint_step / step
                qn = q + dq
                if _ALL(qn >= lower) and _ALL(qn <= upper):
                    break
                over = (qn < lower) | (qn > upper)
                keep = ~over & (jf.any(axis=0))
                if not keep.any():
                    break
                jf = jw * keep  # pinned columns contribute nothing
                v = v * keep
            q = np.minimum(np.maximum(qn, lower), upper)
        return q
