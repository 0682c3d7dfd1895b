"""Scripted expert for ``simenvs/Grasp-v0``: top-down grasp along the narrowest direction.

It reads privileged state (object poses and exact shapes) from the env: picks the object
with the most free space around it, aligns the finger axis with the object's narrowest
horizontal direction (from the support function), descends until the palm would touch the
object's top or the fingertips the table, closes, lifts and holds. It mirrors the env's
target integration, so with action latency it does not double-count actions in flight.
"""

from __future__ import annotations

import numpy as np

from simenvs.envs.grasp import env as genv
from simenvs.envs.grasp.objects import world_support

__all__ = ["GraspExpert", "plan_grasp"]

_N_YAW = 36
_ANG = np.linspace(0.0, np.pi, _N_YAW, endpoint=False)
_DIRS = np.c_[np.cos(_ANG), np.sin(_ANG), np.zeros(_N_YAW)]
_PERP = np.c_[-np.sin(_ANG), np.cos(_ANG), np.zeros(_N_YAW)]
PALM_CLEARANCE = 0.040  # m: the palm sits 4.5 cm above the TCP; keep 5 mm off the object top
MIN_TCP_Z = 0.013  # m: fingertips 9 mm below the TCP stay 4 mm above the table
FINGER_HALF_SPAN = 0.055  # m: open finger outer faces from the grasp centre


def plan_grasp(env: genv.GraspEnv, i: int, others: bool = True) -> tuple[np.ndarray, float, float]:
    """(TCP position, yaw, clearance) of a top-down grasp of object ``i`` at its current pose.

    The finger axis is the object's narrowest horizontal direction, preferring directions
    whose open fingers stay clear of the other objects; the centre is mid-way between the
    object's extremes along the finger axis, and at its centre of mass across it.
    """
    d = env.data
    b = env._obj_body[i]
    obj = env.objects[i]
    pos, mat = d.xpos[b], d.xmat[b].reshape(3, 3)
    hp = world_support(obj, pos, mat, _DIRS)
    hn = world_support(obj, pos, mat, -_DIRS)
    width = hp + hn
    centre_d = 0.5 * (hp - hn)
    com = d.xipos[b]
    # Finger positions (open) for each candidate direction, and their clearance to others.
    centre = centre_d[:, None] * _DIRS + (_PERP @ com)[:, None] * _PERP
    clear = np.full(_N_YAW, 1.0)
    if others:
        for j in range(env.num_objects):
            if j == i:
                continue
            oc = d.xipos[env._obj_body[j], :2]
            r = env.objects[j].radius
            for s in (1.0, -1.0):
                f = centre[:, :2] + s * FINGER_HALF_SPAN * _DIRS[:, :2]
                clear = np.minimum(clear, np.linalg.norm(f - oc, axis=1) - r)
    fits = width <= 0.068
    score = np.where(fits, np.minimum(clear, 0.03) * 2.0 - width, -1.0 - width)
    k = int(np.argmax(score))
    top = float(world_support(obj, pos, mat, np.array([[0.0, 0.0, 1.0]]))[0])
    z = max(MIN_TCP_Z, top - PALM_CLEARANCE)
    tcp = np.array([centre[k, 0], centre[k, 1], z])
    return tcp, float(_ANG[k]), float(clear[k])


def _closest_yaw(yaw: float, ref: float) -> float:
    """The yaw equivalent to ``yaw`` under the gripper's 180° symmetry closest to ``ref``."""
    cands = yaw + np.pi * np.arange(-2, 3)
    cands = cands[np.abs(cands) <= genv.YAW_LIMIT]
    return float(cands[np.argmin(np.abs(cands - ref))])


class GraspExpert:
    """State machine: above -> descend -> close -> lift (-> retry once on a miss)."""

    def __init__(self, env: genv.GraspEnv):
        if env.action_mode != "cartesian":
            raise ValueError("the grasp expert drives action_mode='cartesian'")
        self.env = env
        self.reset()

    def reset(self) -> None:
        e = self.env
        self.target = e.target_pos.copy()  # mirror of the env's integrated target
        self.yaw = float(e.target_yaw)
        self.phase = "above"
        self.timer = 0
        self.retries = 0
        self.obj = 0 if e.target_object else self._choose()
        self.plan = None

    def _choose(self) -> int:
        e = self.env
        best, best_score = 0, -np.inf
        for i in range(e.num_objects):
            if e.data.xipos[e._obj_body[i], 2] < -0.02:  # fell off the table
                continue
            _, _, clear = plan_grasp(e, i)
            score = min(clear, 0.03) - 0.01 * i
            if score > best_score:
                best, best_score = i, score
        return best

    def act(self, obs=None) -> np.ndarray:
        e = self.env
        tcp = e.data.site_xpos[e._tcp]
        grip = -1.0
        if self.phase in ("above", "descend"):
            self.plan = plan_grasp(e, self.obj)
        goal, yaw_goal, _ = self.plan
        yaw_goal = _closest_yaw(yaw_goal, self.yaw)
        if self.phase == "above":
            want = np.array([goal[0], goal[1], max(goal[2] + 0.08, 0.12)])
            if np.linalg.norm(tcp[:2] - goal[:2]) < 0.01 and abs(yaw_goal - self.yaw) < 0.05:
                self.phase = "descend"
        if self.phase == "descend":
            want = goal.copy()
            if tcp[2] - goal[2] < 0.006 or self.timer > 25:
                self.phase, self.timer = "close", 0
            self.timer += 1
        if self.phase == "close":
            want, grip = self.target.copy(), 1.0
            self.timer += 1
            if self.timer >= 8:
                self.phase, self.timer = "lift", 0
        if self.phase == "lift":
            want, grip = self.target.copy(), 1.0
            want[2] = 0.3
            self.timer += 1
            opening = float(e.data.qpos[e._finger_qadr].sum())
            if self.timer > 6 and opening < 0.004 and self.retries < 2:  # closed on nothing
                self.retries += 1
                self.obj = 0 if e.target_object else self._choose()
                self.phase, self.timer = "above", 0
        a = np.zeros(5)
        a[:3] = np.clip((want - self.target) / genv.MAX_DPOS, -1.0, 1.0)
        a[3] = np.clip((yaw_goal - self.yaw) / genv.MAX_DYAW, -1.0, 1.0)
        if self.phase in ("close", "lift"):
            a[3] = 0.0
        a[4] = grip
        a = a.astype(np.float32)
        a64 = a.astype(np.float64)  # integrate exactly what the env will
        lo, hi = genv.WORKSPACE
        self.target = np.minimum(np.maximum(self.target + a64[:3] * genv.MAX_DPOS, lo), hi)
        self.yaw = min(
            max(self.yaw + float(a64[3]) * genv.MAX_DYAW, -genv.YAW_LIMIT), genv.YAW_LIMIT
        )
        return a
