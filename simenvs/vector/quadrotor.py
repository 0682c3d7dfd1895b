"""Vectorized fast path (``BatchOps``) of the quadrotor tasks.

``QuadrotorOps`` is ``simenvs.envs.quadrotor_task.QuadrotorTask``'s per-step logic (action map,
wind through the drag actuators, ground effect, IMU noise, the 18-value quad state) over all
sims; ``DroneRaceOps`` adds ``DroneRaceEnv``'s gates, reward and termination.

These files belong to the task authors, so this module reads the tasks' attributes at each reset
(``on_reset``) and writes its bookkeeping back on request (``sync_task``). The attributes it
relies on, beyond the public ``quad`` handle and ``track``: ``QuadrotorTask`` ``_wind``,
``_has_wind``, ``_imu_std``, ``_imu_noisy``, ``_prev_action``, ``_action_change2`` and its IMU
noise blocks (``_NOISE_BLOCK``); ``DroneRaceEnv`` ``_g_pos``, ``_g_pos0``, ``_pgl``,
``_normals``, ``_cos``/``_sin``, ``_target``, ``_passed``, ``_goal``, ``_t``, ``_lap_time``,
``_prev_p``, ``_dist``, ``_near``, ``_round``, ``_moving``, ``_amp``, ``_omega``, ``_phase``,
``_lateral``, ``_gate_mocap``, ``weights``. ``tests/test_vector.py`` compares this path with
the single env step for step, so a change on either side shows up there.

Exactness: the scalar code uses ``x ** 2`` on floats (C ``pow``), reproduced here with
``np.power`` against an array exponent (numpy squares when the exponent is the scalar 2, which
differs from ``pow`` in the last bit for ~0.1 % of values). Near a gate (a few % of steps) the
pass/hit classification runs per sim with the task's own ``classify``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simenvs.vector.ops import BatchOps, Index

__all__ = ["QuadrotorOps", "DroneRaceOps"]

_NQ = 18
REASONS = np.array(["", "diverged", "ground", "out_of_arena", "gate_frame"], dtype=object)


_TWOS: dict[tuple[int, ...], np.ndarray] = {}


def _pow2(x: np.ndarray) -> np.ndarray:
    """``x ** 2`` as C ``pow`` computes it (what Python floats do). numpy squares instead
    when the exponent is a scalar, which differs in the last bit for ~0.1 % of values; an
    exponent array of x's shape makes it call ``pow``."""
    two = _TWOS.get(x.shape)
    if two is None:
        two = _TWOS[x.shape] = np.full(x.shape, 2.0)
    return np.power(x, two)


class QuadrotorOps(BatchOps):
    """QuadrotorTask's apply_action / quad state over all sims (no reward: tasks add it)."""

    def __init__(self, venv):
        super().__init__(venv)
        import simenvs.envs.quadrotor_task as qt

        e0 = self.envs[0]
        q = e0.quad
        self.quad = q
        self.body = int(q.body_id)
        self.cmd = np.asarray(q.cmd_ids)
        self.drag = np.asarray(q.drag_ids)
        self.pos_sl, self.vel_sl, self.angvel_sl = q.pos_slice, q.vel_slice, q.angvel_slice
        b = self.batch
        self.ctrl = b.bind("ctrl")
        self.qpos = b.bind("qpos")
        self.qvel = b.bind("qvel")
        self.xmat = b.bind("xmat")
        self.ground_effect = bool(e0.ground_effect)
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
        self.arena_lo = np.asarray(e0.arena_low, dtype=float)
        self.arena_hi = np.asarray(e0.arena_high, dtype=float)
        self.half_height = 0.5 * q.p.body_height
        self._lo3 = np.array([self.arena_lo[0], self.arena_lo[1], -np.inf])
        self._hi3 = np.array([self.arena_hi[0], self.arena_hi[1], self.arena_hi[2]])
        self._flat_ground = type(e0).ground_height is qt.QuadrotorTask.ground_height
        self._all = np.arange(n)
        self._buf: dict[int, np.ndarray] = {}

    def rows(self, idx: Index) -> np.ndarray:
        return self._all if isinstance(idx, slice) else idx

    # ---- per episode --------------------------------------------------------------------
    def on_reset(self, ids: Sequence[int]) -> None:
        for i in np.asarray(ids).tolist():
            e = self.envs[i]
            self.wind[i] = e._wind
            self.wind_on[i] = bool(e._has_wind)
            self.imu_std[i] = e._imu_std
            self.imu_on[i] = bool(e._imu_noisy)
            buf = np.asarray(getattr(e, "_noise_buf", np.zeros((0, _NQ))))
            if len(buf) == self.block:  # the reset observation drew a block already
                self.imu_buf[i] = buf
                self.imu_i[i] = int(e._noise_i)
            else:
                self.imu_i[i] = self.block
            self.prev_action[i] = e._prev_action
            self.change2[i] = e._action_change2

    def sync_task(self, i: int) -> None:
        e = self.envs[i]
        e._prev_action = self.prev_action[i].tolist()
        e._action_change2 = float(self.change2[i])
        k = int(self.imu_i[i])
        e._noise_buf, e._noise_i = (self.imu_buf[i].copy(), k) if k < self.block else (
            np.zeros((0, _NQ)), 0)  # fmt: skip

    # ---- per step -----------------------------------------------------------------------
    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        a = np.asarray(applied, dtype=np.float64)
        u = self.quad.action_to_ctrl(a)
        rows = self.rows(idx)
        if isinstance(idx, slice):
            self.ctrl[:, self.cmd] = u
        else:
            self.ctrl[rows[:, None], self.cmd] = u
        wind = self.wind_on[idx]
        if wind.any():
            wr = rows[wind]
            r = self.xmat[wr, self.body]  # row-major R; drag ref = R^T w, column by column
            w = self.wind[wr]
            wx, wy, wz = w[:, 0, None], w[:, 1, None], w[:, 2, None]
            self.ctrl[wr[:, None], self.drag] = r[:, 0:3] * wx + r[:, 3:6] * wy + r[:, 6:9] * wz
        if self.ground_effect:
            self._ground_effect(rows)
        d = a - self.prev_action[idx]
        self.change2[idx] = _pow2(d[:, 0]) + _pow2(d[:, 1]) + _pow2(d[:, 2]) + _pow2(d[:, 3])
        self.prev_action[idx] = a

    def _ground_effect(self, rows: np.ndarray) -> None:
        from simenvs.robots.quadrotor import ground_effect_factor

        q = self.quad
        for i in rows.tolist():
            e = self.envs[i]
            x, y, z = self.qpos[i, self.pos_sl]
            f = ground_effect_factor(z - e.ground_height(x, y), q.p.prop_radius)
            zaxis = self.xmat[i, self.body, 2::3]
            force = self.force[i, self.cmd]
            thrust = float(force[0]) if q.action_mode == "ctbr" else float(force.sum())
            self.xfrc[i, self.body, :3] = (f - 1.0) * thrust * zaxis

    def state_obs(self, idx: Index) -> np.ndarray:
        """pos, vel, rot, body rates (+ IMU noise), the task part, last action; filled in one
        float64 buffer and cast once, as the task's concatenate(..., dtype=float32)."""
        rows = self.rows(idx)
        n = len(rows)
        buf = self._buf.get(n)
        if buf is None:
            d = int(self.venv.single_observation_space.shape[0])
            buf = self._buf[n] = np.empty((n, d))
        buf[:, 0:3] = self.qpos[idx, self.pos_sl]
        buf[:, 3:6] = self.qvel[idx, self.vel_sl]
        buf[:, 6:15] = self.xmat[idx, self.body]
        buf[:, 15:18] = self.qvel[idx, self.angvel_sl]
        noisy = self.imu_on[idx]
        if noisy.any():
            nr = rows[noisy]
            empty = nr[self.imu_i[nr] >= self.block]
            if empty.size:  # the task's block refill: std * normals((block, 18))
                z = self.venv.noise.take(empty, self.block * _NQ).reshape(-1, self.block, _NQ)
                self.imu_buf[empty] = self.imu_std[empty, None, :] * z
                self.imu_i[empty] = 0
            buf[noisy, :_NQ] += self.imu_buf[nr, self.imu_i[nr]]
            self.imu_i[nr] += 1
        self.task_state(idx, buf[:, _NQ:-4])
        buf[:, -4:] = self.venv._last_action[idx]
        return buf.astype(np.float32)

    def task_state(self, idx: Index, out: np.ndarray) -> None:
        """Write the task part of the state (between body rates and last action) into out."""

    def failure(self, idx: Index, p: np.ndarray) -> np.ndarray:
        """QuadrotorTask.quad_failure over sims as codes into ``REASONS`` (0: flying)."""
        z = p[:, 2]
        if self._flat_ground:
            ground = z < self.half_height
        else:
            rows = self.rows(idx)
            gh = np.array([self.envs[i].ground_height(float(a), float(b))
                           for i, (a, b) in zip(rows.tolist(), p[:, :2].tolist())])  # fmt: skip
            ground = z - gh < self.half_height
        out = ((p < self._lo3) | (p > self._hi3)).any(axis=1)
        code = out * 3
        if ground.any():
            code[ground] = 2
        finite = np.isfinite(p).all(axis=1)
        if not finite.all():
            code[~finite] = 1
        return code

    def rate_penalty(self, idx: Index) -> np.ndarray:
        w = self.qvel[idx, self.angvel_sl]
        return w[:, 0] * w[:, 0] + w[:, 1] * w[:, 1] + w[:, 2] * w[:, 2]

    def action_change_penalty(self, idx: Index) -> np.ndarray:
        return self.change2[idx]


class DroneRaceOps(QuadrotorOps):
    """DroneRaceEnv over all sims: gates (static or moving), progress reward, pass/crash."""

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
        self.prev_p = np.zeros((n, 3))
        self.dist = np.zeros(n)
        self.near = np.zeros(n)
        self.round = np.zeros(n, dtype=bool)
        self.closed = np.zeros(n, dtype=bool)
        self.moving = np.zeros(n, dtype=bool)

    def on_reset(self, ids: Sequence[int]) -> None:
        super().on_reset(ids)
        for i in np.asarray(ids).tolist():
            e = self.envs[i]
            k = int(e.n_gates)
            self.n_gates[i] = k
            self.g_pos[i], self.prev_g[i] = np.inf, np.inf  # padding: never near
            self.g_pos[i, :k] = e._g_pos
            self.prev_g[i, :k] = np.asarray(e._pgl, dtype=float)
            self.normals[i, :k] = e._normals
            self.cos[i, :k], self.sin[i, :k] = e._cos, e._sin
            self.target[i], self.passed[i], self.goal[i] = e._target, e._passed, e._goal
            self.t[i], self.lap_time[i] = e._t, e._lap_time
            self.prev_p[i] = e._prev_p
            self.dist[i], self.near[i] = e._dist, e._near
            self.round[i], self.closed[i] = bool(e._round), bool(e.track.closed)
            self.moving[i] = bool(e._moving)

    def sync_task(self, i: int) -> None:
        super().sync_task(i)
        e = self.envs[i]
        k = int(self.n_gates[i])
        e._g_pos = self.g_pos[i, :k].copy()
        e._gl = [tuple(x) for x in e._g_pos.tolist()]
        e._pgl = [tuple(x) for x in self.prev_g[i, :k].tolist()]
        e._target, e._passed = int(self.target[i]), int(self.passed[i])
        e._t, e._lap_time, e._dist = float(self.t[i]), float(self.lap_time[i]), float(self.dist[i])
        e._prev_p = tuple(float(v) for v in self.prev_p[i])

    # ---- per step -----------------------------------------------------------------------
    def apply_actions(self, idx: Index, applied: np.ndarray) -> None:
        super().apply_actions(idx, applied)
        moving = self.moving[idx]
        if moving.any():
            for i in self.rows(idx)[moving].tolist():
                self._move_gates(i)

    def _move_gates(self, i: int) -> None:
        """DroneRaceEnv.apply_action's gate motion for sim i (per sim: the task's array
        shapes, so numpy's sin gives the same bits)."""
        e = self.envs[i]
        k = int(self.n_gates[i])
        self.prev_g[i, :k] = self.g_pos[i, :k]
        t = float(self.t[i]) + self.dt
        w, a, ph = e._omega, e._amp, e._phase
        lat = np.sin(w * t + ph[:, 0])[:, None] * e._lateral
        up = 0.5 * np.sin(0.8 * w * t + ph[:, 1])
        g = e._g_pos0 + a * lat
        g[:, 2] += a * up
        self.g_pos[i, :k] = g
        self.mocap_pos[i, self.gate_mocap[:k]] = g

    def evaluate(self, idx: Index) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        rows = self.rows(idx)
        n = len(rows)
        t = self.t[idx] + self.dt
        self.t[idx] = t
        p = self.qpos[idx, self.pos_sl].copy()
        px, py, pz = p[:, 0], p[:, 1], p[:, 2]
        code = self.failure(idx, p)
        ok = code == 0
        prev = self.prev_p[idx]
        passed = np.zeros(n, dtype=bool)
        # the task's gate loop: gates within lim of the new position (exact test below)
        e = _pow2(p - prev)
        step = np.sqrt(e[:, 0] + e[:, 1] + e[:, 2])
        lim = self.near[idx] + step
        lim2 = lim * lim
        diff = p[:, None, :] - self.g_pos[idx]  # (n, G, 3); padding at infinity
        cand = np.einsum("ngj,ngj->ng", diff, diff) <= (lim2 * (1.0 + 1e-9))[:, None]
        cand &= ok[:, None]
        if cand.any():  # candidates by a margin; the task's exact test on them only
            js, gs = np.nonzero(cand)
            e = _pow2(diff[js, gs])
            d2 = e[:, 0] + e[:, 1] + e[:, 2]
            keep = ~(d2 > lim2[js])
            if keep.any():
                self._near_gates(rows, js[keep], gs[keep], p, prev, code, passed)
        w = self.weights
        e = _pow2(self.g_pos[rows, self.target[idx]] - p)
        dist = np.sqrt(e[:, 0] + e[:, 1] + e[:, 2])
        reward = 0.0 + w["progress"] * (self.dist[idx] - dist)
        success = np.zeros(n, dtype=bool)
        for j in np.flatnonzero(passed).tolist():
            i = int(rows[j])
            self.passed[i] += 1
            rj = 0.0 + w["gate"]
            if self.passed[i] >= self.goal[i]:
                success[j] = True
                rj += w["lap"]
                self.lap_time[i] = self.t[i]
            self.target[i] = (self.target[i] + 1) % self.n_gates[i]
            tx, ty, tz = (float(v) for v in self.g_pos[i, self.target[i]])
            x, y, z = float(px[j]), float(py[j]), float(pz[j])
            dist[j] = math.sqrt((tx - x) ** 2 + (ty - y) ** 2 + (tz - z) ** 2)
            rj += w["progress"] * float(self.dist[i])
            reward[j] = rj
        self.dist[idx] = dist
        reward = reward - (
            w["body_rate"] * self.rate_penalty(idx)
            + w["action_change"] * self.action_change_penalty(idx)
        )
        crashed = code != 0
        if crashed.any():
            reward = np.where(crashed, reward - w["crash"], reward)
        self.prev_p[idx] = p
        info = {
            "gates_passed": np.array(self.passed[idx]),
            "lap_time": np.where(success, self.lap_time[idx], t),
            "crashed": crashed,
            "crash_reason": REASONS[code],
            "is_success": success,
            "target_gate": np.array(self.target[idx]),
        }
        return reward, crashed | success, info

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
        rows = self.rows(idx)
        p = self.qpos[idx, self.pos_sl]
        k = self.target[idx]
        k2 = k + 1
        wrap = k2 >= self.n_gates[idx]
        if wrap.any():
            k2 = np.where(wrap, np.where(self.closed[idx], 0, self.n_gates[idx] - 1), k2)
        out[:, 0:3] = self.g_pos[rows, k] - p
        out[:, 3:6] = self.normals[rows, k]
        out[:, 6:9] = self.g_pos[rows, k2] - p
        out[:, 9:12] = self.normals[rows, k2]
