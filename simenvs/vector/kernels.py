"""Compiled per-step kernels of the quadrotor fast path (``simenvs.vector.quadrotor``).

Each step of the batched env ran ~120 small numpy calls over ``(num_envs, ...)`` arrays; the
batch's physics step between them evicts their arrays from the caches, so each call cost about
twice its isolated time. These kernels do the same work in one pass over the sims per phase
(action -> ctrl, observation, gate bookkeeping + reward), writing into preallocated arrays.

Exactness: the arithmetic is the numpy code's, in the same order, so results are bit for bit
the same (``tests/test_vector.py`` compares with the single env). No ``fastmath`` (it would
reorder and contract into FMAs). ``x ** 2`` of the scalar task code is C ``pow``; with a
constant exponent (``2`` or ``2.0``) numba computes ``x * x`` instead, which differs in the
last bit for ~0.1 % of values (measured), so callers pass the exponent ``two`` as an argument
(then ``pow`` is called: equal to ``np.power`` and Python's ``**`` on 2M values). Rows of sims
are ``rows[j]``: ``j`` indexes the per-call arrays, ``rows[j]`` the per-sim state.

numba does not check indices: the callers check the widths these loops assume (the obs
width, the task part, the actuator columns) when they build or call them.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["quad_actions", "imu_refill_rows", "quad_obs", "race_pre", "race_post"]

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _rot_row(qpos, i, q0, rot):
    """``quat_to_rot`` of sim i's quaternion into ``rot[i]`` (the same arithmetic)."""
    w = qpos[i, q0]
    x = qpos[i, q0 + 1]
    y = qpos[i, q0 + 2]
    z = qpos[i, q0 + 3]
    q00, q01, q02, q03 = w * w, w * x, w * y, w * z
    q11, q12, q13 = x * x, x * y, x * z
    q22, q23, q33 = y * y, y * z, z * z
    rot[i, 0] = q00 + q11 - q22 - q33
    rot[i, 1] = 2.0 * (q12 - q03)
    rot[i, 2] = 2.0 * (q13 + q02)
    rot[i, 3] = 2.0 * (q12 + q03)
    rot[i, 4] = q00 - q11 + q22 - q33
    rot[i, 5] = 2.0 * (q23 - q01)
    rot[i, 6] = 2.0 * (q13 - q02)
    rot[i, 7] = 2.0 * (q23 + q01)
    rot[i, 8] = q00 - q11 - q22 + q33


@_jit
def quad_actions(
    rows, a, u, ctrl, cmd, drag, wind, wind_on, qpos, q0, rot, rot_ok, prev_action, change2,
    two,
):  # fmt: skip
    """QuadrotorTask.apply_action of sims ``rows``: the command ctrl ``u`` (the robot's
    ``action_to_ctrl`` of the actions ``a``), the drag actuators' air velocity in body axes
    ``R^T w`` (attitude from the ``rot`` cache, filled where stale), the action-change
    penalty."""
    nc = cmd.shape[0]
    for j in range(rows.shape[0]):
        i = rows[j]
        for c in range(nc):
            ctrl[i, cmd[c]] = u[j, c]
        if wind_on[i]:
            if not rot_ok[i]:
                _rot_row(qpos, i, q0, rot)
                rot_ok[i] = True
            w0, w1, w2 = wind[i, 0], wind[i, 1], wind[i, 2]
            for c in range(3):
                ctrl[i, drag[c]] = rot[i, c] * w0 + rot[i, 3 + c] * w1 + rot[i, 6 + c] * w2
        s = 0.0
        for c in range(a.shape[1]):
            e = (a[j, c] - prev_action[i, c]) ** two
            s = e if c == 0 else s + e
            prev_action[i, c] = a[j, c]
        change2[i] = s


@_jit
def imu_refill_rows(rows, imu_on, imu_i, block, finishing, out):
    """Sims among ``rows`` with IMU noise whose noise block is spent (and that are not reset
    right after this step) into ``out``; returns how many."""
    k = 0
    for j in range(rows.shape[0]):
        i = rows[j]
        if imu_on[i] and imu_i[i] >= block and not finishing[i]:
            out[k] = i
            k += 1
    return k


@_jit
def quad_obs(
    rows, qpos, qvel, p0, v0, w0, q0, rot, rot_ok, imu_on, finishing, imu_buf, imu_i, tg,
    rel, last_action, out,
):  # fmt: skip
    """The quad state of sims ``rows`` into ``out`` (float32): pos, vel, attitude (also into
    the ``rot`` cache), body rates, + each noisy sim's next IMU noise row (sims reset right
    after this step draw none), the task part ``tg`` (triples flagged in ``rel`` relative to
    the position), the last action."""
    ntg = tg.shape[1]
    na = last_action.shape[1]
    nq = 18
    row = np.empty(nq)
    for j in range(rows.shape[0]):
        i = rows[j]
        for c in range(3):
            row[c] = qpos[i, p0 + c]
            row[3 + c] = qvel[i, v0 + c]
            row[15 + c] = qvel[i, w0 + c]
        _rot_row(qpos, i, q0, rot)
        rot_ok[i] = True
        for c in range(9):
            row[6 + c] = rot[i, c]
        if imu_on[i] and not finishing[i]:
            k = imu_i[i]
            for c in range(nq):
                row[c] = row[c] + imu_buf[i, k, c]
            imu_i[i] = k + 1
        for c in range(nq):
            out[j, c] = row[c]
        for c in range(ntg):
            v = tg[i, c]
            if rel[c // 3]:
                v = v - qpos[i, p0 + c % 3]
            out[j, nq + c] = v
        for c in range(na):
            out[j, nq + ntg + c] = last_action[i, c]


@_jit
def race_pre(
    rows, qpos, p0, t, dt, t_out, p, flat, lo_fly, hi3, half_height, code, ps, moving, vmax,
    scan_t, bound, scan,
):  # fmt: skip
    """DroneRaceOps.evaluate up to the gate scan: time, position ``p`` (copied), the failure
    codes (flat ground only: 0 flying, 1 not finite, 2 ground, 3 outside), and which sims may
    be near a gate (``_needs_scan``'s conservative test; 1e-6 m margins). Returns
    (any failure, any scan)."""
    any_code = False
    any_scan = False
    for j in range(rows.shape[0]):
        i = rows[j]
        ti = t[i] + dt
        t[i] = ti
        t_out[j] = ti
        x = qpos[i, p0]
        y = qpos[i, p0 + 1]
        z = qpos[i, p0 + 2]
        p[j, 0] = x
        p[j, 1] = y
        p[j, 2] = z
        cj = 0
        if flat:
            if not (
                x >= lo_fly[0] and y >= lo_fly[1] and z >= lo_fly[2]
                and x <= hi3[0] and y <= hi3[1] and z <= hi3[2]
            ):  # fmt: skip
                if not (math.isfinite(x) and math.isfinite(y) and math.isfinite(z)):
                    cj = 1
                elif z < half_height:
                    cj = 2
                elif x < lo_fly[0] or y < lo_fly[1] or x > hi3[0] or y > hi3[1] or z > hi3[2]:
                    cj = 3
            code[j] = cj
            if cj != 0:
                any_code = True
        else:
            cj = code[j]  # (computed by the caller)
        if cj != 0:
            scan[j] = False
            continue
        a0, a1, a2 = x - ps[i, 0, 0], y - ps[i, 0, 1], z - ps[i, 0, 2]
        b0, b1, b2 = x - ps[i, 1, 0], y - ps[i, 1, 1], z - ps[i, 1, 2]
        slack = math.sqrt(b0 * b0 + b1 * b1 + b2 * b2) + math.sqrt(a0 * a0 + a1 * a1 + a2 * a2)
        slack += 1e-6
        if moving:
            slack += vmax[i] * abs(ti - scan_t[i])
        s = not (slack < bound[i])
        scan[j] = s
        if s:
            any_scan = True
    return any_code, any_scan


@_jit
def _set_rows(i, target, n_gates, closed, k2, g_pos, normals, tg):
    """DroneRaceOps._set_rows: tg of sim i after its target changed."""
    k = target[i]
    ng = n_gates[i]
    kk = k + 1
    if kk >= ng:
        kk = 0 if closed[i] else ng - 1
    k2[i] = kk
    for c in range(3):
        tg[i, c] = g_pos[i, k, c]
        tg[i, 3 + c] = normals[i, k, c]
        tg[i, 6 + c] = g_pos[i, kk, c]
        tg[i, 9 + c] = normals[i, kk, c]


@_jit
def race_post(
    rows, p, t, passed, code, tg, dist, n_passed, goal, lap_time, target, n_gates, closed, k2,
    g_pos, normals, qvel, w0, change2, prev_p, w_progress, w_gate, w_lap, w_rate, w_change,
    w_crash, two, reward, success, lap_out, n_passed_out, target_out, crashed, done,
):  # fmt: skip
    """DroneRaceOps.evaluate after the gate scan: progress reward (distance to the target gate
    centre), a passed gate's bonus, next target and lap, penalties, crash; the info arrays
    and ``done`` (crashed or lap complete). Returns whether any sim crashed."""
    any_crash = False
    for j in range(rows.shape[0]):
        i = rows[j]
        x, y, z = p[j, 0], p[j, 1], p[j, 2]
        e0 = (tg[i, 0] - x) ** two
        e1 = (tg[i, 1] - y) ** two
        e2 = (tg[i, 2] - z) ** two
        d = math.sqrt(e0 + e1 + e2)
        old = dist[i]
        r = 0.0 + w_progress * (old - d)
        ok = False
        if passed[j]:
            n_passed[i] += 1
            r = 0.0 + w_gate
            if n_passed[i] >= goal[i]:
                ok = True
                r += w_lap
                lap_time[i] = t[j]
            target[i] = (target[i] + 1) % n_gates[i]
            _set_rows(i, target, n_gates, closed, k2, g_pos, normals, tg)
            k = target[i]
            d = math.sqrt(
                (g_pos[i, k, 0] - x) ** two + (g_pos[i, k, 1] - y) ** two
                + (g_pos[i, k, 2] - z) ** two
            )  # fmt: skip
            r += w_progress * old
        dist[i] = d
        ww0 = qvel[i, w0] * qvel[i, w0]
        ww1 = qvel[i, w0 + 1] * qvel[i, w0 + 1]
        ww2 = qvel[i, w0 + 2] * qvel[i, w0 + 2]
        r = r - (w_rate * (ww0 + ww1 + ww2) + w_change * change2[i])
        crash = code[j] != 0
        if crash:
            r = r - w_crash
            any_crash = True
        crashed[j] = crash
        done[j] = crash or ok
        reward[j] = r
        prev_p[i, 0] = x
        prev_p[i, 1] = y
        prev_p[i, 2] = z
        success[j] = ok
        lap_out[j] = lap_time[i] if ok else t[j]
        n_passed_out[j] = n_passed[i]
        target_out[j] = target[i]
    return any_crash


@_jit
def gate_scan(
    rows, js, p, prev, t, n_gates, g_pos, prev_g, cos, sin, near, slab, two, scan_p, scan_t,
    bound, cand,
):  # fmt: skip
    """DroneRaceOps' gate loop of sims ``rows[js]`` (the task's arithmetic, in gate order):
    records each sim's culling bound (the larger of the distances to a gate's near sphere
    and to its slab, smallest over gates) and writes the (sim, gate) pairs the task would
    ``classify`` -- near the gate and crossing its plane or ending in its frame's slab -- as
    rows ``(j, gate, x0, y0, z0, x1, y1, z1)`` of ``cand`` (gate-frame start and end of the
    step). Returns how many."""
    m = 0
    for jj in range(js.shape[0]):
        j = js[jj]
        i = rows[j]
        px, py, pz = p[j, 0], p[j, 1], p[j, 2]
        ox, oy, oz = prev[j, 0], prev[j, 1], prev[j, 2]
        nr = near[i]
        step = math.sqrt((px - ox) ** two + (py - oy) ** two + (pz - oz) ** two)
        lim = nr + step
        lim2 = lim * lim
        b_min = math.inf
        for g in range(n_gates[i]):
            c, sn = cos[i, g], sin[i, g]
            a1, b1, z1 = px - g_pos[i, g, 0], py - g_pos[i, g, 1], pz - g_pos[i, g, 2]
            d2 = a1**two + b1**two + z1**two
            x1 = a1 * c + b1 * sn
            b = math.sqrt(d2) - nr
            b2 = abs(x1) - slab
            if b2 > b:
                b = b2
            if b < b_min:
                b_min = b
            if d2 > lim2:
                continue
            a0, b0 = ox - prev_g[i, g, 0], oy - prev_g[i, g, 1]
            x0 = a0 * c + b0 * sn
            if (x0 < 0.0) == (x1 < 0.0) and not abs(x1) <= slab:
                continue
            cand[m, 0] = j
            cand[m, 1] = g
            cand[m, 2] = x0
            cand[m, 3] = -a0 * sn + b0 * c
            cand[m, 4] = oz - prev_g[i, g, 2]
            cand[m, 5] = x1
            cand[m, 6] = -a1 * sn + b1 * c
            cand[m, 7] = z1
            m += 1
        scan_p[i, 0] = px
        scan_p[i, 1] = py
        scan_p[i, 2] = pz
        scan_t[i] = t[j]
        bound[i] = b_min
    return m
