"""Vectorized fast path (``BatchOps``) of the quadrotor tasks.

``QuadrotorOps`` is ``simenvs.envs.quadrotor_task.QuadrotorTask``'s per-step logic (action map,
wind through the drag actuators, ground effect, IMU noise, the 18-value quad state) over all
sims; ``DroneRaceOps`` adds ``DroneRaceEnv``'s gates, reward and termination.

These files belong to the task authors, so this module reads the tasks' per-episode values at
each reset (``on_reset``) and writes its bookkeeping back on request (``sync_task``). Every read
or write of a task attribute that is not public API goes through the accessors below
(``_quad_episode``, ``_set_quad_bookkeeping``, ``_race_episode``, ``_set_race_state``), so a
rename on the task side is a change in one place; ``tests/test_vector.py`` compares this path
with the single env step for step, so a change on either side shows up there.

Exactness: the per-step work runs in the compiled kernels of ``simenvs.vector.kernels``
(one pass over the sims per phase: ``quad_actions``, ``race_pre``, ``race_post``, ``quad_obs``,
and ``gate_scan`` when a sim may be near a gate), with the task's arithmetic in its order, so
the results are the single env's bit for bit. The scalar code's ``x ** 2`` is C ``pow``, which
the kernels call too (numpy squares when the exponent is the scalar 2, which differs from
``pow`` in the last bit for ~0.1 % of values). The attitude is ``quat_to_rot``'s arithmetic
on the current ``qpos``. The pass/hit classification of a (sim, gate) pair the scan returns
(a few per gate passage) runs with the task's own ``classify``. Moving gates (``np.sin``),
ground effect and the IMU noise draws (the task's noise stream) stay in numpy.

Cost: a step of all sims is 5 kernel calls and ~30 small numpy calls, with per-sim Python
only for the IMU noise blocks (one draw per sim every 32 steps), a near gate's
``classify``, moving gates or ground effect. The ops may run on sims that finished their
episode and are reset right after the step (``steps_finished``): those draw no noise, and
the reset overwrites what they computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from simenvs.robots.indexing import as_slice
from simenvs.robots.quadrotor import quat_to_rot, quats_to_rots
from simenvs.vector.kernels import (
    gate_scan,
    imu_refill_rows,
    quad_actions,
    quad_obs,
    race_post,
    race_pre,
)
from simenvs.vector.ops import BatchOps, Index

__all__ = ["QuadrotorOps", "DroneRaceOps"]

_NQ = 18
REASONS = np.array(["", "diverged", "ground", "out_of_arena", "gate_frame"], dtype=object)
_FEW_ROWS = 6  # at most this many sims' rotations / failure codes in Python floats


# ---- the tasks' non-public state, in one place -------------------------------------------
# Public accessors the tasks could offer instead (see the helper report): QuadrotorTask
# ``episode_constants()`` -> wind, imu_std, and ``step_bookkeeping()`` / ``set_step_bookkeeping``
# for (prev_action, action_change2, noise block, noise index); DroneRaceEnv
# ``race_state()`` already gives gate_pos / gate_normals / target / gates_passed / goal / time /
# closed; missing there: prev_gate_pos, cos/sin of the gate yaws, lap_time, prev_pos, dist,
# near, round, moving-gate motion (g_pos0, amp, omega, phase, lateral) and the gate mocap ids.
def _quad_episode(e: Any) -> tuple[Any, ...]:
    """(wind, has_wind, imu_std, imu_noisy, noise block (rows of 18, possibly none), noise
    index, prev_action, action_change2)"""
    return (
        e._wind, bool(e._has_wind), e._imu_std, bool(e._imu_noisy),
        getattr(e, "_noise_buf", ()), int(getattr(e, "_noise_i", 0)), e._prev_action,
        e._action_change2,
    )  # fmt: skip


def _set_quad_bookkeeping(e: Any, prev_action, change2, noise_buf, noise_i) -> None:
    e._prev_action = list(prev_action)
    e._action_change2 = float(change2)
    e._noise_buf, e._noise_i = noise_buf, int(noise_i)


def _race_episode(e: Any) -> dict[str, Any]:
    rs = e.race_state()
    return {
        "n_gates": int(e.n_gates),
        "g_pos": rs["gate_pos"],
        "normals": rs["gate_normals"],
        "target": int(rs["target"]),
        "passed": int(rs["gates_passed"]),
        "goal": int(rs["goal"]),
        "t": float(rs["time"]),
        "closed": bool(rs["closed"]),
        "prev_g": np.asarray(e._pgl, dtype=float),
        "cos": e._cos,
        "sin": e._sin,
        "lap_time": float(e._lap_time),
        "prev_p": e._prev_p,
        "dist": float(e._dist),
        "near": float(e._near),
        "round": bool(e._round),
        "moving": bool(e._moving),
    }


def _race_motion(e: Any) -> tuple[Any, ...]:
    """Moving-gate parameters of the episode: (g_pos0, omega, amp, phase, lateral)."""
    return e._g_pos0, e._omega, e._amp, e._phase, e._lateral


def _set_race_state(e: Any, g_pos, prev_g, target, passed, t, lap_time, dist, prev_p) -> None:
    e._g_pos = g_pos
    e._gl = [tuple(x) for x in g_pos.tolist()]
    e._pgl = [tuple(x) for x in prev_g.tolist()]
    e._target, e._passed = int(target), int(passed)
    e._t, e._lap_time, e._dist = float(t), float(lap_time), float(dist)
    e._prev_p = tuple(float(v) for v in prev_p)
    e._cull = None  # the task's gate-loop culling bound: recomputed at its next scan


class QuadrotorOps(BatchOps):
    """QuadrotorTask's apply_action / quad state over all sims (no reward: tasks add it)."""

    steps_finished = True

    def __init__(self, venv):
        super().__init__(venv)
        import simenvs.envs.quadrotor_task as qt

        e0 = self.envs[0]
        q = e0.quad
        self.quad = q
        self.body = int(q.body_id)
        self.cmd = as_slice(q.cmd_ids)
        self.drag = as_slice(q.drag_ids)
        self.pos_sl, self.vel_sl, self.angvel_sl = q.pos_slice, q.vel_slice, q.angvel_slice
        self.quat_sl = q.quat_slice
        b = self.batch
        self.ctrl = b.bind("ctrl")
        self.qpos = b.bind("qpos")
        self.qvel = b.bind("qvel")
        self.ground_effect = bool(e0.ground_effect)
        # the state rows hold all the step reads, but for ground effect (actuator_force)
        self.needs_derived = self.ground_effect
        if self.ground_effect:
            self.xfrc = b.bind("xfrc_applied")
            self.force = b.bind("actuator_force")
        n = self.n
        self.wind = np.zeros((n, 3))
        self.wind_on = np.zeros(n, dtype=bool)
        self.imu_std = np.zeros((n, _NQ))
        self.imu_on = np.zeros(n, dtype=bool)
        self.block = int(getattr(qt, "_NOISE_BLOCK", 1))  # IMU noise rows drawn at once
        self.imu_buf = np.zeros((n, self.block, _NQ))
        self.imu_i = np.full(n, self.block, dtype=np.int64)
        self.prev_action = np.zeros((n, 4))
        self.change2 = np.zeros(n)
        self.rot = np.zeros((n, 9))  # attitude of the current qpos (rows where rot_ok)
        self.rot_ok = np.zeros(n, dtype=bool)
        self.arena_lo = np.asarray(e0.arena_low, dtype=float)
        self.arena_hi = np.asarray(e0.arena_high, dtype=float)
        self.half_height = 0.5 * q.p.body_height
        self._lo3 = np.array([self.arena_lo[0], self.arena_lo[1], -np.inf])
        self._hi3 = np.array([self.arena_hi[0], self.arena_hi[1], self.arena_hi[2]])
        self._lo_fly = np.array([self.arena_lo[0], self.arena_lo[1], self.half_height])
        self._flat_ground = type(e0).ground_height is qt.QuadrotorTask.ground_height
        self._all = np.arange(n)
        self._imu_any = False  # any sim has IMU noise this episode
        # the kernels' column numbers (slices of the state rows)
        nu = self.ctrl.shape[1]
        self._cmd_ids = np.arange(nu)[self.cmd].astype(np.int64)
        self._drag_ids = np.arange(nu)[self.drag].astype(np.int64)
        if len(self._drag_ids) != 3:
            raise ValueError(f"expected 3 drag actuators, got {len(self._drag_ids)}")
        nq, nv = self.qpos.shape[1], self.qvel.shape[1]
        self._p0 = _start(self.pos_sl, nq, 3)
        self._q0 = _start(self.quat_sl, nq, 4)
        self._v0 = _start(self.vel_sl, nv, 3)
        self._w0 = _start(self.angvel_sl, nv, 3)
        self._no_finish = np.zeros(n, dtype=bool)  # venv._finishing when None
        self._refill = np.zeros(n, dtype=np.int64)  # imu_refill_rows' output
        self._no_task = (np.zeros((n, 0)), np.zeros(0, dtype=bool))
        self._dim = int(venv.single_observation_space.shape[0])

    def rows(self, idx: Index) -> np.ndarray:
        return self._all if isinstance(idx, slice) else idx

    # ---- per episode --------------------------------------------------------------------
    def on_reset(self, ids: Sequence[int]) -> None:
        blk = self.block
        for i in np.asarray(ids).tolist():
            wind, has_wind, std, noisy, buf, k, prev, change2 = _quad_episode(self.envs[i])
            self.wind[i] = wind
            self.wind_on[i] = has_wind
            self.imu_std[i] = std
            self.imu_on[i] = noisy
            if len(buf) == blk:  # the reset observation drew a block already
                if type(buf) is list:  # rows of Python floats: one pass, no shape discovery
                    buf = np.fromiter(chain.from_iterable(buf), np.float64, blk * _NQ)
                    buf = buf.reshape(blk, _NQ)
                self.imu_buf[i] = buf
                self.imu_i[i] = k
            else:
                self.imu_i[i] = blk
            self.prev_action[i] = prev
            self.change2[i] = change2
        self.rot_ok[np.asarray(ids)] = False
        self._imu_any = bool(self.imu_on.any())

    def sync_task(self, i: int) -> None:
        k = int(self.imu_i[i])
        buf, k = (self.imu_buf[i].copy(), k) if k < self.block else (np.zeros((0, _NQ)), 0)
        _set_quad_bookkeeping(self.envs[i], self.prev_action[i].tolist(), self.change2[i], buf, k)
        self.rot_ok[i] = False  # a call may move the sim

    # ---- per step -----------------------------------------------------------------------
    def rots(self, idx: Index, out: np.ndarray | None = None) -> np.ndarray:
        """Body-to-world rotations (row-major, 9) of the current qpos of sims ``idx`` (into
        ``out`` if given)."""
        r = quats_to_rots(self.qpos[idx, self.quat_sl])
        if out is not None:
            out[:] = r
        return r

    def _current_rots(self, idx: Index) -> np.ndarray:
        """``rots(idx)``, from the cache the last observation filled; rows it does not hold
        (sims reset or moved since) are computed."""
        ok = self.rot_ok[idx]
        if not ok.all():
            bad = self.rows(idx)[~ok]
            if len(bad) <= _FEW_ROWS:  # (sims just reset)
                q = self.qpos[bad, self.quat_sl].tolist()
                self.rot[bad] = [quat_to_rot(*x) for x in q]
            else:
                self.rot[bad] = self.rots(bad)
            self.rot_ok[bad] = True
        return self.rot[idx]

    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        a = np.asarray(applied, dtype=np.float64)
        u = np.asarray(self.quad.action_to_ctrl(a), dtype=np.float64)
        rows = self.rows(idx)
        if a.shape != (len(rows), 4) or u.shape != (len(rows), len(self._cmd_ids)):
            raise ValueError(f"actions of shape {a.shape} for {len(rows)} sims: need 4 each")
        quad_actions(
            rows, a, u, self.ctrl, self._cmd_ids, self._drag_ids, self.wind, self.wind_on,
            self.qpos, self._q0, self.rot, self.rot_ok, self.prev_action, self.change2, 2.0,
        )  # fmt: skip
        if self.ground_effect:
            self._ground_effect(rows)

    def _ground_effect(self, rows: np.ndarray) -> None:
        from simenvs.robots.quadrotor import ground_effect_factor

        q = self.quad
        r = self._current_rots(rows)
        for j, i in enumerate(rows.tolist()):
            e = self.envs[i]
            x, y, z = self.qpos[i, self.pos_sl]
            f = ground_effect_factor(z - e.ground_height(x, y), q.p.prop_radius)
            zaxis = r[j, 2::3]
            force = self.force[i, self.cmd]
            thrust = float(force[0]) if q.action_mode == "ctbr" else float(force.sum())
            self.xfrc[i, self.body, :3] = (f - 1.0) * thrust * zaxis

    def state_obs(self, idx: Index) -> np.ndarray:
        """pos, vel, rot, body rates (+ IMU noise), the task part, last action, as the task's
        list of floats -> float32 (one kernel pass; the IMU noise blocks refilled first)."""
        rows = self.rows(idx)
        finishing = self.venv._finishing  # sims reset right after this step: no noise drawn
        if finishing is None:
            finishing = self._no_finish
        if self._imu_any:
            k = imu_refill_rows(rows, self.imu_on, self.imu_i, self.block, finishing, self._refill)
            if k:
                self._refill_imu(self._refill[:k].copy())
        tg, rel = self.task_part()
        last = self.venv._last_action
        if _NQ + tg.shape[1] + last.shape[1] != self._dim or len(rel) * 3 != tg.shape[1]:
            raise ValueError(f"task part of width {tg.shape[1]} does not fit {self._dim} obs")
        out = np.empty((len(rows), self._dim), dtype=np.float32)
        quad_obs(
            rows, self.qpos, self.qvel, self._p0, self._v0, self._w0, self._q0, self.rot,
            self.rot_ok, self.imu_on, finishing, self.imu_buf, self.imu_i, tg, rel, last, out,
        )  # fmt: skip
        return out

    def _refill_imu(self, empty: np.ndarray) -> None:
        """Draw the next IMU noise block of sims ``empty`` (the task's refill: std * normals)."""
        fill = self.venv.noise.fill
        for i in empty.tolist():
            block = self.imu_buf[i]
            fill(i, block.reshape(-1))  # (a view: the buffer is contiguous)
            np.multiply(block, self.imu_std[i], out=block)  # (std * z: the same product)
        self.imu_i[empty] = 0

    def task_part(self) -> tuple[np.ndarray, np.ndarray]:
        """The task part of the state (between body rates and last action) of every sim: an
        ``(n, 3k)`` array and k flags, True where a triple is relative to the position."""
        return self._no_task

    def failure(self, idx: Index, p: np.ndarray) -> np.ndarray:
        """QuadrotorTask.quad_failure over sims as codes into ``REASONS`` (0: flying)."""
        if self._flat_ground:  # one test of the common case: flying, inside, finite
            ok = (p >= self._lo_fly) & (p <= self._hi3)
            if ok.all():
                return np.zeros(len(p), dtype=np.int64)  # (nan fails both comparisons)
            bad = np.flatnonzero(~ok.all(axis=1))
            if len(bad) <= _FEW_ROWS:  # (a sim or two crashed): the codes below, in Python floats
                return self._few_failures(len(p), bad, p[bad].tolist())
        z = p[:, 2]
        if self._flat_ground:
            ground = z < self.half_height
        else:
            rows = self.rows(idx)
            gh = np.array([self.envs[i].ground_height(float(a), float(b))
                           for i, (a, b) in zip(rows.tolist(), p[:, :2].tolist())])  # fmt: skip
            ground = z - gh < self.half_height
        out = ((p < self._lo3) | (p > self._hi3)).any(axis=1)
        finite = np.isfinite(p).all(axis=1)
        if not ((out | ground).any() or not finite.all()):
            return np.zeros(len(p), dtype=np.int64)
        code = out * 3
        code[ground] = 2
        code[~finite] = 1
        return code

    def _few_failures(self, n: int, bad: np.ndarray, pts: list) -> np.ndarray:
        """``failure``'s codes (flat ground) when only the sims ``bad`` (at ``pts``) are not
        flying inside the arena: not finite 1, ground 2, outside 3."""
        code = np.zeros(n, dtype=np.int64)
        (x0, y0, _), (x1, y1, z1) = self._lo3.tolist(), self._hi3.tolist()
        hh, fin = self.half_height, math.isfinite
        for j, (x, y, z) in zip(bad.tolist(), pts):
            if not (fin(x) and fin(y) and fin(z)):
                code[j] = 1
            elif z < hh:
                code[j] = 2
            elif x < x0 or y < y0 or x > x1 or y > y1 or z > z1:
                code[j] = 3
        return code


def _start(sl: slice, size: int, length: int) -> int:
    """First column of a contiguous slice of ``length`` columns (what the kernels index)."""
    cols = np.arange(size)[sl]
    if len(cols) != length or (length > 1 and np.any(np.diff(cols) != 1)):
        raise ValueError(f"expected {length} contiguous columns, got {sl}")
    return int(cols[0])


class DroneRaceOps(QuadrotorOps):
    """DroneRaceEnv over all sims: gates (static or moving), progress reward, pass/crash."""

    fresh_info = True  # evaluate's info arrays are new each call

    def __init__(self, venv):
        super().__init__(venv)
        from simenvs.envs.drone_race.env import MAX_GATES

        e0 = self.envs[0]
        n, g = self.n, MAX_GATES
        self.G = g
        self.mocap_pos = self.batch.bind("mocap_pos")
        self.gate_mocap = np.asarray(e0._gate_mocap)
        self.weights = dict(e0.weights)
        self.geo = e0.gate_geo
        self.radius = e0.quad_params.radius
        self.slab = 0.5 * self.geo.depth + self.radius  # |x| within it: the frame's slab
        self.dt = float(e0.dt)
        self.n_gates = np.zeros(n, dtype=np.int64)
        self.g_pos = np.full((n, g, 3), np.inf)
        self.normals = np.zeros((n, g, 3))
        self.cos = np.zeros((n, g))
        self.sin = np.zeros((n, g))
        self.prev_g = np.full((n, g, 3), np.inf)
        self.target = np.zeros(n, dtype=np.int64)
        self.passed = np.zeros(n, dtype=np.int64)
        self.goal = np.zeros(n, dtype=np.int64)
        self.t = np.zeros(n)
        self.lap_time = np.zeros(n)
        # last position and position at the last gate scan, side by side (_needs_scan takes
        # both distances in one pass)
        self._ps = np.zeros((n, 2, 3))
        self.prev_p = self._ps[:, 0]
        self.dist = np.zeros(n)
        self.near = np.zeros(n)
        self.round = np.zeros(n, dtype=bool)
        self.closed = np.zeros(n, dtype=bool)
        self.moving = np.zeros(n, dtype=bool)
        self._any_moving = False
        self.scan_p = self._ps[:, 1]  # gate-loop culling (see _needs_scan)
        self.scan_t = np.zeros(n)
        self.bound = np.full(n, -np.inf)
        self.vmax = np.zeros(n)
        # task_state's upcoming gates, per sim: target gate centre and normal, then the next
        # gate's (refreshed when the target changes or the gates move)
        self.tg = np.zeros((n, 12))
        self.k2 = np.zeros(n, dtype=np.int64)  # the gate after the target (tg's second)
        self._blank = REASONS[np.zeros(n, dtype=np.int64)]  # crash_reason of no crash
        self._rel = np.array([True, False, True, False])  # tg's triples relative to the quad
        self._scan_mask = np.zeros(n, dtype=bool)  # race_pre's output
        self._no_pass = np.zeros(n, dtype=bool)  # race_post's gate passes when none scanned
        self._cand = np.zeros((n * g, 8))  # gate_scan's output
        w = self.weights
        self._w = tuple(float(w[k]) for k in ("progress", "gate", "lap", "body_rate",
                                              "action_change", "crash"))  # fmt: skip

    def on_reset(self, ids: Sequence[int]) -> None:
        super().on_reset(ids)
        for i in np.asarray(ids).tolist():
            ep = _race_episode(self.envs[i])
            k = ep["n_gates"]
            self.n_gates[i] = k
            self.g_pos[i], self.prev_g[i] = np.inf, np.inf  # padding: never near
            self.g_pos[i, :k] = ep["g_pos"]
            self.prev_g[i, :k] = ep["prev_g"]
            self.normals[i, :k] = ep["normals"]
            self.cos[i, :k], self.sin[i, :k] = ep["cos"], ep["sin"]
            self.target[i], self.passed[i], self.goal[i] = ep["target"], ep["passed"], ep["goal"]
            self.t[i], self.lap_time[i] = ep["t"], ep["lap_time"]
            self.prev_p[i] = ep["prev_p"]
            self.dist[i], self.near[i] = ep["dist"], ep["near"]
            self.round[i], self.closed[i] = ep["round"], ep["closed"]
            self.moving[i] = ep["moving"]
            if ep["moving"]:  # gate speed bound: lateral a*w, vertical 0.4*a*w
                _, omega, amp, _, _ = _race_motion(self.envs[i])
                self.vmax[i] = 1.1 * amp * omega
            else:
                self.vmax[i] = 0.0
            self.bound[i] = -np.inf
            self._set_rows(i)
        self._any_moving = bool(self.moving.any())

    def _set_rows(self, i: int) -> None:
        """``tg`` of sim i after its target changed or its gates moved."""
        k, ng = int(self.target[i]), int(self.n_gates[i])
        k2 = k + 1
        if k2 >= ng:
            k2 = 0 if self.closed[i] else ng - 1
        self.k2[i] = k2
        g, nm, t = self.g_pos[i], self.normals[i], self.tg[i]
        t[0:3], t[3:6], t[6:9], t[9:12] = g[k], nm[k], g[k2], nm[k2]

    def sync_task(self, i: int) -> None:
        super().sync_task(i)
        self.bound[i] = -np.inf  # a call may move the quad or the gates
        k = int(self.n_gates[i])
        _set_race_state(
            self.envs[i], self.g_pos[i, :k].copy(), self.prev_g[i, :k], self.target[i],
            self.passed[i], self.t[i], self.lap_time[i], self.dist[i], self.prev_p[i],
        )  # fmt: skip

    # ---- per step -----------------------------------------------------------------------
    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        super().apply_actions(idx, applied)
        if self._any_moving:
            mr = self.rows(idx)[self.moving[idx]]
            for i in mr.tolist():
                self._move_gates(i)
            g = self.g_pos  # task_state's gate centres follow (their normals do not move)
            self.tg[mr, 0:3] = g[mr, self.target[mr]]
            self.tg[mr, 6:9] = g[mr, self.k2[mr]]

    def _move_gates(self, i: int) -> None:
        """DroneRaceEnv.apply_action's gate motion for sim i (per sim: the task's array
        shapes, so numpy's sin gives the same bits)."""
        g0, w, a, ph, lateral = _race_motion(self.envs[i])
        k = int(self.n_gates[i])
        self.prev_g[i, :k] = self.g_pos[i, :k]
        t = float(self.t[i]) + self.dt
        lat = np.sin(w * t + ph[:, 0])[:, None] * lateral
        up = 0.5 * np.sin(0.8 * w * t + ph[:, 1])
        g = g0 + a * lat
        g[:, 2] += a * up
        self.g_pos[i, :k] = g
        self.mocap_pos[i, self.gate_mocap[:k]] = g

    def evaluate(self, idx: Index) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Two kernel passes (``race_pre``: time, failures, which sims may be near a gate;
        ``race_post``: reward, gate passes, info) around the gate scan of the few sims that
        need one."""
        rows = self.rows(idx)
        n = len(rows)
        t = np.empty(n)
        p = np.empty((n, 3))
        flat = self._flat_ground
        if flat:
            code = np.empty(n, dtype=np.int64)
        else:  # the task's own ground height, per sim
            p[:] = self.qpos[idx, self.pos_sl]
            code = self.failure(idx, p)
        scan = self._scan_mask[:n]
        _, any_scan = race_pre(
            rows, self.qpos, self._p0, self.t, self.dt, t, p, flat, self._lo_fly, self._hi3,
            self.half_height, code, self._ps, self._any_moving, self.vmax, self.scan_t,
            self.bound, scan,
        )  # fmt: skip
        passed = self._no_pass  # (read only)
        if any_scan:
            passed = np.zeros(n, dtype=bool)
            self._scan(rows, np.flatnonzero(scan), p, self.prev_p[idx], t, code, passed)
        reward = np.empty(n)
        success = np.empty(n, dtype=bool)
        lap = np.empty(n)
        gates = np.empty(n, dtype=np.int64)
        target = np.empty(n, dtype=np.int64)
        crashed, done = np.empty(n, dtype=bool), np.empty(n, dtype=bool)
        any_crash = race_post(
            rows, p, t, passed, code, self.tg, self.dist, self.passed, self.goal, self.lap_time,
            self.target, self.n_gates, self.closed, self.k2, self.g_pos, self.normals, self.qvel,
            self._w0, self.change2, self.prev_p, *self._w, 2.0, reward, success, lap, gates,
            target, crashed, done,
        )  # fmt: skip
        info = {
            "gates_passed": gates,
            "lap_time": lap,
            "crashed": crashed,
            "crash_reason": REASONS[code] if any_crash else self._blank[:n].copy(),
            "is_success": success,
            "target_gate": target,
        }
        return reward, done, info

    def _scan(self, rows, js, p, prev, t, code, passed) -> None:
        """The gate loop of sims ``rows[js]`` through ``gate_scan`` (the task's arithmetic in
        Python floats' order, so the same bits), then the task's own ``classify`` on the pairs
        it returns, in (sim, gate) order; records each sim's bound for ``race_pre``'s culling."""
        from simenvs.envs.drone_race.gates import HIT, PASS, classify

        cand = self._cand
        m = gate_scan(
            rows, js, p, prev, t, self.n_gates, self.g_pos, self.prev_g, self.cos, self.sin,
            self.near, self.slab, 2.0, self.scan_p, self.scan_t, self.bound, cand,
        )  # fmt: skip
        if not m:
            return
        geo, r = self.geo, self.radius
        for j, g, x0, y0, z0, x1, y1, z1 in cand[:m].tolist():
            j = int(j)
            if code[j]:
                continue  # an earlier gate was hit: the task's loop stopped there
            i = int(rows[j])
            res = classify((x0, y0, z0), (x1, y1, z1), bool(self.round[i]), geo, r)
            if res == HIT:
                code[j] = 4  # "gate_frame"
            elif res == PASS and int(g) == int(self.target[i]):
                passed[j] = True

    def task_part(self) -> tuple[np.ndarray, np.ndarray]:
        return self.tg, self._rel
