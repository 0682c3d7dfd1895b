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

Exactness: the scalar code uses ``x ** 2`` on floats (C ``pow``), reproduced here with
``np.power`` against an array exponent (numpy squares when the exponent is the scalar 2, which
differs from ``pow`` in the last bit for ~0.1 % of values). The attitude is the robot module's
``quats_to_rots`` of the current ``qpos`` (the single env's ``quat_to_rot``, over arrays). Near
a gate (a few % of steps) the pass/hit classification runs per sim with the task's own
``classify``.

Cost: a step of all sims is ~50 numpy calls on ``(num_envs, ...)`` arrays, with no per-sim
Python unless a sim is near a gate, moving gates are on, or ground effect is on. The ops may
run on sims that finished their episode and are reset right after the step
(``steps_finished``): those draw no noise, and the reset overwrites what they computed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain
from typing import Any

import numpy as np

from simenvs.robots.indexing import as_slice
from simenvs.robots.quadrotor import quat_to_rot, quats_to_rots
from simenvs.vector.ops import BatchOps, Index

__all__ = ["QuadrotorOps", "DroneRaceOps"]

_NQ = 18
REASONS = np.array(["", "diverged", "ground", "out_of_arena", "gate_frame"], dtype=object)


_FEW = 6  # at most this many sims to scan for gates: a Python loop (see _scan_few)
_TWOS: dict[tuple[int, ...], np.ndarray] = {}


def _pow2(x: np.ndarray) -> np.ndarray:
    """``x ** 2`` as C ``pow`` computes it (what Python floats do). numpy squares instead
    when the exponent is a scalar, which differs in the last bit for ~0.1 % of values; an
    exponent array of x's shape makes it call ``pow``."""
    two = _TWOS.get(x.shape)
    if two is None:
        two = _TWOS[x.shape] = np.full(x.shape, 2.0)
    return np.power(x, two)


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
        self._imu_flat = self.imu_buf.reshape(n * self.block, _NQ)  # (a view)
        self._imu_row0 = np.arange(n) * self.block  # each sim's first row in _imu_flat
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
        self._buf: dict[int, np.ndarray] = {}
        self._wind_all = self._imu_all = False  # every sim has wind / IMU noise this episode

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
        self._wind_all = bool(self.wind_on.all())
        self._imu_all = bool(self.imu_on.all())

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
            if len(bad) <= _FEW:  # (sims just reset)
                q = self.qpos[bad, self.quat_sl].tolist()
                self.rot[bad] = [quat_to_rot(*x) for x in q]
            else:
                self.rot[bad] = self.rots(bad)
            self.rot_ok[bad] = True
        return self.rot[idx]

    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        a = np.asarray(applied, dtype=np.float64)
        u = self.quad.action_to_ctrl(a)
        full = isinstance(idx, slice)
        if full:
            self.ctrl[:, self.cmd] = u
        else:
            self.ctrl[idx[:, None], self.cmd] = u
        if full and self._wind_all:
            r = self._current_rots(idx)  # drag reference = R^T w, column by column
            w = self.wind
            self.ctrl[:, self.drag] = (
                r[:, 0:3] * w[:, 0:1] + r[:, 3:6] * w[:, 1:2] + r[:, 6:9] * w[:, 2:3]
            )
        else:
            wind = self.wind_on[idx]
            if wind.any():
                wr = self.rows(idx)[wind]
                r = self._current_rots(wr)
                w = self.wind[wr]
                self.ctrl[wr[:, None], self.drag] = (
                    r[:, 0:3] * w[:, 0:1] + r[:, 3:6] * w[:, 1:2] + r[:, 6:9] * w[:, 2:3]
                )
        if self.ground_effect:
            self._ground_effect(self.rows(idx))
        d = a - self.prev_action[idx]
        e = _pow2(d)
        self.change2[idx] = e[:, 0] + e[:, 1] + e[:, 2] + e[:, 3]
        self.prev_action[idx] = a

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
        """pos, vel, rot, body rates (+ IMU noise), the task part, last action; filled in one
        float64 buffer and cast once, as the task's list of floats -> float32."""
        full = isinstance(idx, slice)
        rows = self.rows(idx)
        n = len(rows)
        buf = self._buf.get(n)
        if buf is None:
            d = int(self.venv.single_observation_space.shape[0])
            buf = self._buf[n] = np.empty((n, d))
        qpos, qvel = self.qpos, self.qvel
        buf[:, 0:3] = qpos[idx, self.pos_sl]
        buf[:, 3:6] = qvel[idx, self.vel_sl]
        if full:
            self.rots(idx, self.rot)
            buf[:, 6:15] = self.rot
            self.rot_ok[:] = True
        else:
            r = self.rots(idx, buf[:, 6:15])
            self.rot[idx] = r
            self.rot_ok[idx] = True
        buf[:, 15:18] = qvel[idx, self.angvel_sl]
        finishing = self.venv._finishing  # sims reset right after this step: no noise drawn
        if full and self._imu_all:
            self._imu_noise(rows, buf, skip=finishing)
        else:
            noisy = self.imu_on[idx]
            if finishing is not None:
                noisy = noisy & ~finishing[idx]
            if noisy.any():
                self._imu_noise(rows[noisy], buf, noisy)
        self.task_state(idx, buf[:, _NQ:-4])
        buf[:, -4:] = self.venv._last_action[idx]
        return buf.astype(np.float32)

    def _imu_noise(
        self, nr: np.ndarray, buf: np.ndarray, mask: Any = None, skip: Any = None
    ) -> None:
        """Add each sim's next IMU noise row (the task's block refill: std * normals).

        ``skip`` (with every sim): sims reset right after this step, whose observation is
        dropped: they draw no noise (a spent block is not refilled; any of its rows is added).
        """
        full = mask is None  # then nr is every sim, in order: slices instead of gathers
        k = self.imu_i if full else self.imu_i[nr]
        used = k >= self.block
        if skip is not None:
            used &= ~skip
        if used.any():
            empty = nr[used]
            z = self.venv.noise.take(empty, self.block * _NQ).reshape(-1, self.block, _NQ)
            self.imu_buf[empty] = self.imu_std[empty, None, :] * z
            self.imu_i[empty] = 0
            k = self.imu_i if full else self.imu_i[nr]
        if full:  # one gather along the flat rows (cheaper than a 2-d fancy index)
            if skip is not None:  # (their reset sets imu_i again)
                k = np.minimum(k, self.block - 1)
            buf[:, :_NQ] += self._imu_flat[self._imu_row0 + k]
            self.imu_i += 1
        else:
            buf[mask, :_NQ] += self._imu_flat[self._imu_row0[nr] + k]
            self.imu_i[nr] = k + 1

    def task_state(self, idx: Index, out: np.ndarray) -> None:
        """Write the task part of the state (between body rates and last action) into out."""

    def failure(self, idx: Index, p: np.ndarray) -> np.ndarray:
        """QuadrotorTask.quad_failure over sims as codes into ``REASONS`` (0: flying)."""
        if self._flat_ground:  # one test of the common case: flying, inside, finite
            ok = (p >= self._lo_fly) & (p <= self._hi3)
            if ok.all():
                return np.zeros(len(p), dtype=np.int64)  # (nan fails both comparisons)
            bad = np.flatnonzero(~ok.all(axis=1))
            if len(bad) <= _FEW:  # (a sim or two crashed): the codes below, in Python floats
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

    def rate_penalty(self, idx: Index) -> np.ndarray:
        w = self.qvel[idx, self.angvel_sl]
        ww = w * w
        return ww[:, 0] + ww[:, 1] + ww[:, 2]

    def action_change_penalty(self, idx: Index) -> np.ndarray:
        return self.change2[idx]


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
        # _scan_few's per-sim gate lists (Python floats), built on first use; None: stale
        self._pyl: list[tuple | None] = [None] * n

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
            self._pyl[i] = None
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
        self._pyl[i] = None  # (apply_actions refreshes tg)

    def evaluate(self, idx: Index) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        rows = self.rows(idx)
        n = len(rows)
        t = self.t[idx] + self.dt
        self.t[idx] = t
        p = np.array(self.qpos[idx, self.pos_sl])
        code = self.failure(idx, p)
        prev = self.prev_p[idx]
        passed = np.zeros(n, dtype=bool)
        scan = self._needs_scan(idx, p, prev, t)
        if code.any():
            scan &= code == 0
        if scan.any():
            self._scan(rows, np.flatnonzero(scan), p, prev, t, code, passed)
        w = self.weights
        e = _pow2(self.tg[idx, 0:3] - p)
        dist = np.sqrt(e[:, 0] + e[:, 1] + e[:, 2])
        reward = 0.0 + w["progress"] * (self.dist[idx] - dist)
        success = np.zeros(n, dtype=bool)
        if passed.any():
            for j in np.flatnonzero(passed).tolist():
                i = int(rows[j])
                self.passed[i] += 1
                rj = 0.0 + w["gate"]
                if self.passed[i] >= self.goal[i]:
                    success[j] = True
                    rj += w["lap"]
                    self.lap_time[i] = self.t[i]
                self.target[i] = (self.target[i] + 1) % self.n_gates[i]
                self._set_rows(i)
                tx, ty, tz = (float(v) for v in self.g_pos[i, self.target[i]])
                x, y, z = (float(v) for v in p[j])
                dist[j] = math.sqrt((tx - x) ** 2 + (ty - y) ** 2 + (tz - z) ** 2)
                rj += w["progress"] * float(self.dist[i])
                reward[j] = rj
        self.dist[idx] = dist
        reward = reward - (
            w["body_rate"] * self.rate_penalty(idx)
            + w["action_change"] * self.action_change_penalty(idx)
        )
        crashed = code != 0
        any_crash = crashed.any()
        if any_crash:
            reward = np.where(crashed, reward - w["crash"], reward)
        self.prev_p[idx] = p
        info = {
            "gates_passed": self.passed[idx].copy(),
            "lap_time": np.where(success, self.lap_time[idx], t) if success.any() else t,
            "crashed": crashed,
            "crash_reason": REASONS[code] if any_crash else self._blank[:n].copy(),
            "is_success": success,
            "target_gate": self.target[idx].copy(),
        }
        return reward, crashed | success, info

    def _needs_scan(self, idx: Index, p: np.ndarray, prev: np.ndarray, t: np.ndarray):
        """Sims that may have a gate the task's loop would classify as other than NONE: one
        within ``near + step`` of the quad whose plane the step crosses or whose slab it ends
        in. Others are skipped by a bound from their last scan (``_scan``): every gate was
        then at least ``bound`` away from being so; since then the quad moved ``disp`` and
        the gates at most ``vmax * (t - scan_t)``. Margins of 1e-6 m cover the rounding of
        this test."""
        d = p[:, None, :] - self._ps[idx]  # to prev (the step), to the scan position
        s = np.sqrt(np.einsum("ijk,ijk->ij", d, d))
        slack = s[:, 1] + s[:, 0]
        slack += 1e-6
        if self._any_moving:
            slack += self.vmax[idx] * np.abs(t - self.scan_t[idx])
        return ~(slack < self.bound[idx])

    def _scan(self, rows, js, p, prev, t, code, passed) -> None:
        """The gate loop of sims ``rows[js]``: candidates by a margin, the task's exact test on
        them (``_near_gates``); records each sim's bound for ``_needs_scan``."""
        if len(js) <= _FEW:
            return self._scan_few(rows, js, p, prev, t, code, passed)
        every = len(js) == len(p) and len(rows) == self.n  # all sims (hovering near a gate)
        ii = slice(None) if every else rows[js]
        pj, pv = (p, prev) if every else (p[js], prev[js])
        diff = pj[:, None, :] - self.g_pos[ii]  # (k, G, 3); padding at infinity
        d2 = np.einsum("ngj,ngj->ng", diff, diff)
        near = self.near[ii]
        self.scan_p[ii], self.scan_t[ii] = pj, (t if every else t[js])
        # a pair is classified only when the quad is near the gate *and* its step crosses the
        # gate plane or ends in the frame's slab (see _near_gates); the bound is how far the
        # quad (or the gate) must move before either can change for some gate: the larger of
        # the distances to the near sphere and to the slab, smallest over gates. Padding
        # gates give inf - inf * 0 = nan in the plane term, which fmax ignores.
        x = diff[:, :, 0] * self.cos[ii] + diff[:, :, 1] * self.sin[ii]
        with np.errstate(invalid="ignore"):
            slab = np.abs(x) - self.slab
            self.bound[ii] = np.fmax(np.sqrt(d2) - near[:, None], slab).min(axis=1)
        e = _pow2(pj - pv)  # the task's step length, bit for bit
        lim = near + np.sqrt(e[:, 0] + e[:, 1] + e[:, 2])
        lim2 = lim * lim
        cand = d2 <= (lim2 * (1.0 + 1e-9))[:, None]
        if cand.any():
            cj, gs = np.nonzero(cand)
            e = _pow2(diff[cj, gs])
            keep = ~(e[:, 0] + e[:, 1] + e[:, 2] > lim2[cj])
            if keep.any():
                self._near_gates(rows, js[cj[keep]], gs[keep], p, prev, code, passed)

    def _scan_few(self, rows, js, p, prev, t, code, passed) -> None:
        """``_scan`` for a few sims, in Python floats: the task's own gate loop (its
        arithmetic, so the same bits), cheaper than ~30 numpy calls on a few rows."""
        from simenvs.envs.drone_race.gates import HIT, PASS, classify

        geo, r, slab = self.geo, self.radius, self.slab
        sqrt, inf = math.sqrt, math.inf
        ii = rows[js]
        for j, i, (px, py, pz), (ox, oy, oz), tj in zip(
            js.tolist(), ii.tolist(), p[js].tolist(), prev[js].tolist(), t[js].tolist()
        ):
            lists = self._pyl[i]
            if lists is None:
                k = int(self.n_gates[i])
                gates = [
                    (g, *a, *b, c, sn) for g, (a, b, c, sn) in enumerate(zip(
                        self.g_pos[i, :k].tolist(), self.prev_g[i, :k].tolist(),
                        self.cos[i, :k].tolist(), self.sin[i, :k].tolist(),
                    ))
                ]  # fmt: skip
                lists = self._pyl[i] = (gates, float(self.near[i]), bool(self.round[i]))
            gates, near, rnd = lists
            step = sqrt((px - ox) ** 2 + (py - oy) ** 2 + (pz - oz) ** 2)
            lim = near + step
            lim2 = lim * lim
            bound = inf
            target = int(self.target[i])
            hit = False  # an earlier gate was hit: the task's loop stopped there
            for g, gx, gy, gz, hx, hy, hz, c, sn in gates:
                a1, b1, z1 = px - gx, py - gy, pz - gz
                d2 = a1**2 + b1**2 + z1**2
                x1 = a1 * c + b1 * sn
                b = sqrt(d2) - near
                b2 = abs(x1) - slab
                if b2 > b:
                    b = b2
                if b < bound:
                    bound = b
                if d2 > lim2 or hit:  # far: NONE
                    continue
                a0, b0 = ox - hx, oy - hy
                x0 = a0 * c + b0 * sn
                if (x0 < 0.0) == (x1 < 0.0) and not abs(x1) <= slab:
                    continue  # neither crosses the plane nor ends in the slab: NONE
                res = classify((x0, -a0 * sn + b0 * c, oz - hz), (x1, -a1 * sn + b1 * c, z1),
                               rnd, geo, r)  # fmt: skip
                if res == HIT:
                    code[j] = 4  # "gate_frame"
                    hit = True
                elif res == PASS and g == target:
                    passed[j] = True
            self.scan_p[i] = (px, py, pz)
            self.scan_t[i] = tj
            self.bound[i] = bound

    def _near_gates(self, rows, js, gs, p, prev, code, passed) -> None:
        """The task's per-gate loop for the near (sim, gate) pairs ``(js, gs)``.

        Gate-frame coordinates are computed for all pairs at once with the task's arithmetic;
        only pairs whose step crosses the gate plane or ends inside the frame's slab can be
        anything but NONE, and those (a few per gate passage) go through the task's own
        ``classify`` in gate order.
        """
        from simenvs.envs.drone_race.gates import HIT, PASS, classify

        ii = rows[js]
        c, sn = self.cos[ii, gs], self.sin[ii, gs]
        d0 = prev[js] - self.prev_g[ii, gs]  # (m, 3): a0, b0, z0
        d1 = p[js] - self.g_pos[ii, gs]  # a1, b1, z1
        x0 = d0[:, 0] * c + d0[:, 1] * sn
        x1 = d1[:, 0] * c + d1[:, 1] * sn
        need = ((x0 < 0.0) != (x1 < 0.0)) | (np.abs(x1) <= 0.5 * self.geo.depth + self.radius)
        if not need.any():
            return
        y0, z0 = -d0[:, 0] * sn + d0[:, 1] * c, d0[:, 2]
        y1, z1 = -d1[:, 0] * sn + d1[:, 1] * c, d1[:, 2]
        geo, r = self.geo, self.radius
        for k in np.flatnonzero(need).tolist():  # (sim, gate) order, as the task's loop
            j, i = int(js[k]), int(ii[k])
            if code[j]:
                continue  # an earlier gate was hit: the task's loop stopped there
            cur = (float(x1[k]), float(y1[k]), float(z1[k]))
            res = classify((float(x0[k]), float(y0[k]), float(z0[k])), cur, bool(self.round[i]),
                           geo, r)  # fmt: skip
            if res == HIT:
                code[j] = 4  # "gate_frame"
            elif res == PASS and int(gs[k]) == int(self.target[i]):
                passed[j] = True

    def task_state(self, idx: Index, out: np.ndarray) -> None:
        p = self.qpos[idx, self.pos_sl]
        out[:] = self.tg[idx]
        out[:, 0:3] -= p
        out[:, 6:9] -= p
