"""Numba kernels for RooftopLanding: the per-step hooks and the safe map (one call each instead
of dozens of small Python/numpy operations).

Bit-identical to the Python code they replace (``tests/test_rooftop_landing.py`` compares
them): the same float64 operations in the same order, no fastmath, no transcendental
functions (``math.hypot``, ``**`` and the like stay in Python: CPython's and libm's may
round differently), cell lookups with Python's float ``//`` (numba implements it as CPython
does) and float32 map values widened to float64 before use, as ``ndarray.item`` gives them.
``cache=True``: compiled once per machine (~10 s CPU), then loaded from ``__pycache__``.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "ctbr_action_kernel",
    "find_sites",
    "flight_reward_kernel",
    "free_cells",
    "paint_obstacles",
    "state_obs_kernel",
]


@numba.njit(cache=True)
def _quat_rot(qp: np.ndarray, out: np.ndarray, o: int) -> None:
    """``quat_to_rot`` of ``qp[3:7]`` into ``out[o : o + 9]`` (same arithmetic)."""
    w, x, y, z = qp[3], qp[4], qp[5], qp[6]
    q00, q01, q02, q03 = w * w, w * x, w * y, w * z
    q11, q12, q13 = x * x, x * y, x * z
    q22, q23, q33 = y * y, y * z, z * z
    out[o + 0] = q00 + q11 - q22 - q33
    out[o + 1] = 2.0 * (q12 - q03)
    out[o + 2] = 2.0 * (q13 + q02)
    out[o + 3] = 2.0 * (q12 + q03)
    out[o + 4] = q00 - q11 + q22 - q33
    out[o + 5] = 2.0 * (q23 - q01)
    out[o + 6] = 2.0 * (q13 - q02)
    out[o + 7] = 2.0 * (q23 + q01)
    out[o + 8] = q00 - q11 - q22 + q33


@numba.njit(cache=True)
def _height_below(x: float, y: float, hmap: np.ndarray, mg: np.ndarray) -> float:
    """``RooftopLandingEnv.ground_height``: the height map's cell under (x, y), 0 outside."""
    c = int((x - mg[0]) // mg[2])
    r = int((y - mg[1]) // mg[2])
    if 0 <= r < hmap.shape[0] and 0 <= c < hmap.shape[1]:
        return float(hmap[r, c])
    return 0.0


@numba.njit(cache=True)
def state_obs_kernel(
    qpos: np.ndarray,  # the quad's 7 qpos values
    qvel: np.ndarray,  # its 6 qvel values
    imu: np.ndarray,  # (n, 18) scaled IMU noise rows
    imu_i: int,  # row to add (-1: none)
    site: np.ndarray,  # x, y, z, radius of the best site (NaN x: none)
    hmap: np.ndarray,  # safe-map height (float32)
    mg: np.ndarray,  # its origin x, y, resolution
    gmap: np.ndarray,  # max-pooled clearance-grid map (float32)
    gg: np.ndarray,  # its origin x, y, resolution, step k, cmax, rmax
    range_max: float,
    rn: np.ndarray,  # (n, 10) range noise rows
    rn_i: int,  # row to add (-1: none)
    last: np.ndarray,  # last action (float64, 4)
) -> np.ndarray:
    """The 36-value oracle state observation (``QuadrotorTask.state_obs`` with
    ``RooftopLandingEnv._task_state_list``), float32. Positions must be finite."""
    if not (np.isfinite(qpos[0]) and np.isfinite(qpos[1])):
        return np.empty(0, np.float32)  # the caller's Python path raises as before
    o = np.empty(36)
    o[0], o[1], o[2] = qpos[0], qpos[1], qpos[2]
    o[3], o[4], o[5] = qvel[0], qvel[1], qvel[2]
    _quat_rot(qpos, o, 6)
    o[15], o[16], o[17] = qvel[3], qvel[4], qvel[5]
    if imu_i >= 0:
        for k in range(18):
            o[k] = o[k] + imu[imu_i, k]
    x, y, z = qpos[0], qpos[1], qpos[2]  # the task part reads the clean position
    if site[0] == site[0]:
        o[18], o[19], o[20], o[21] = site[0] - x, site[1] - y, site[2] - z, site[3]
    else:
        o[18] = o[19] = o[20] = o[21] = 0.0
    alt = z - _height_below(x, y, hmap, mg)
    o[22] = range_max if range_max < alt else alt
    res, k = gg[2], int(gg[3])
    c = int((x - gg[0]) // res) - k
    if c < 0:
        c = 0
    if c > int(gg[4]):
        c = int(gg[4])
    r = int((y - gg[1]) // res) - k
    if r < 0:
        r = 0
    if r > int(gg[5]):
        r = int(gg[5])
    j = 23
    for row in range(3):  # rows -y to +y, columns -x to +x
        for col in range(3):
            v = z - float(gmap[r + row * k, c + col * k])
            o[j] = range_max if range_max < v else v
            j += 1
    if rn_i >= 0:
        for i in range(10):
            o[22 + i] = o[22 + i] + rn[rn_i, i]
    for i in range(4):
        o[32 + i] = last[i]
    return o.astype(np.float32)


@numba.njit(cache=True)
def ctbr_action_kernel(
    a: np.ndarray,  # normalized action (float64, 4)
    ctrl: np.ndarray,  # data.ctrl
    cmd: np.ndarray,  # int64 ids of thrust, rate x/y/z actuators
    scale: np.ndarray,  # action scale (4)
    offset: np.ndarray,  # action offset (4)
    wind: np.ndarray,  # world-frame air velocity (3; used when has_wind)
    has_wind: bool,
    drag: np.ndarray,  # int64 ids of the drag actuators
    qpos: np.ndarray,  # the quad's 7 qpos values
    ground_effect: bool,
    hmap: np.ndarray,  # safe-map height (float32; empty before the first reset)
    mg: np.ndarray,  # its origin x, y, resolution
    prop_radius: float,
    force: np.ndarray,  # data.actuator_force
    xfrc: np.ndarray,  # the quad's row of data.xfrc_applied
) -> bool:
    """``QuadrotorTask.apply_action`` for CTBR (affine map, drag reference, ground effect)
    with ``RooftopLandingEnv.ground_height``; the action-change penalty stays in Python.
    False when the ground effect needs the cell under a non-finite position (the caller
    raises, as the Python path's cell lookup does)."""
    for i in range(4):
        ctrl[cmd[i]] = a[i] * scale[i] + offset[i]
    if not (has_wind or ground_effect):
        return True
    r = np.empty(9)
    _quat_rot(qpos, r, 0)
    if has_wind:  # drag reference in the body axes: (R^T w)_k = R[:, k] . w
        wx, wy, wz = wind[0], wind[1], wind[2]
        for k in range(3):
            ctrl[drag[k]] = r[k] * wx + r[3 + k] * wy + r[6 + k] * wz
    if ground_effect:  # ground_effect_factor (max 1.6) at the height above the surface
        gh = 0.0
        if hmap.shape[0]:
            if not (np.isfinite(qpos[0]) and np.isfinite(qpos[1])):
                return False
            gh = _height_below(qpos[0], qpos[1], hmap, mg)
        h = qpos[2] - gh
        f = 1.6  # as ground_effect_factor's branches and min(1.6, v) (NaN h: 1.6)
        if h > 0.0:
            q = prop_radius / (4.0 * h)
            if q < 1.0:
                v = 1.0 / (1.0 - q * q)
                if v < 1.6:
                    f = v
        kk = (f - 1.0) * force[cmd[0]]
        xfrc[0] = kk * r[2]
        xfrc[1] = kk * r[5]
        xfrc[2] = kk * r[8]
    return True


# ---------------------------------------------------------------------- safe map (reset)
@numba.njit(cache=True)
def paint_obstacles(
    height: np.ndarray,  # (h, w) float32, updated: the highest top over each cell
    blocked: np.ndarray,  # (h, w) bool, updated: cells under an obstacle
    order: np.ndarray,  # obstacle indices, lowest top first (stable)
    lo: np.ndarray,  # (n, 3) AABB lower corners
    hi: np.ndarray,  # (n, 3) upper corners
    disc: np.ndarray,  # bool: an upright cylinder (cells within its radius only)
    pos: np.ndarray,  # (n, 3) centres
    rad2: np.ndarray,  # squared radii (as numpy's scalar ** 2 gives them)
    xs: np.ndarray,
    ys: np.ndarray,  # float32 cell centres
    x0: float,
    y0: float,  # grid origin
    res: float,
) -> None:
    """``compute_safe_map``'s obstacle layer: the cells each AABB overlaps (the numpy
    floor / ceil / clip of the Python version; discs for upright cylinders) painted lowest
    top first, then merged into ``height`` and ``blocked``."""
    h, w = height.shape
    paint = np.full((h, w), -np.inf, np.float32)
    for k in order:
        c0 = int(min(max(np.floor((lo[k, 0] - x0) / res + 1e-9), 0.0), w))
        c1 = int(min(max(np.ceil((hi[k, 0] - x0) / res - 1e-9), 0.0), w))
        r0 = int(min(max(np.floor((lo[k, 1] - y0) / res + 1e-9), 0.0), h))
        r1 = int(min(max(np.ceil((hi[k, 1] - y0) / res - 1e-9), 0.0), h))
        if c0 >= c1 or r0 >= r1:
            continue
        t = np.float32(hi[k, 2])
        if disc[k]:
            px, py, rr = pos[k, 0], pos[k, 1], rad2[k]
            for r in range(r0, r1):
                dy = max(abs(np.float64(ys[r]) - py) - res / 2, 0.0)
                dy2 = dy * dy
                for c in range(c0, c1):
                    dx = max(abs(np.float64(xs[c]) - px) - res / 2, 0.0)
                    if dx * dx + dy2 < rr:
                        paint[r, c] = t
        else:
            for r in range(r0, r1):
                for c in range(c0, c1):
                    paint[r, c] = t
    for r in range(h):
        for c in range(w):
            p = paint[r, c]
            if p > -np.inf:
                blocked[r, c] = True
                if p > height[r, c]:
                    height[r, c] = p


@numba.njit(cache=True)
def free_cells(face: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Cells on a roof face, not blocked, not on a seam between two faces (a 4-neighbour
    with another face id, both >= 0)."""
    h, w = face.shape
    free = np.zeros((h, w), np.bool_)
    for r in range(h):
        for c in range(w):
            f = face[r, c]
            if f < 0 or blocked[r, c]:
                continue
            if r > 0 and face[r - 1, c] >= 0 and face[r - 1, c] != f:
                continue
            if r + 1 < h and face[r + 1, c] >= 0 and face[r + 1, c] != f:
                continue
            if c > 0 and face[r, c - 1] >= 0 and face[r, c - 1] != f:
                continue
            if c + 1 < w and face[r, c + 1] >= 0 and face[r, c + 1] != f:
                continue
            free[r, c] = True
    return free


@numba.njit(cache=True)
def _fill(mark: np.ndarray, r0: int, c0: int, old: int, new: int, stack: np.ndarray):
    """4-connected flood fill of the ``old``-valued region at (r0, c0) with ``new`` (the
    cells ``cv2.floodFill(..., flags=4)`` fills), by row spans: (area, first cell's flat
    index, bounding box rows rmin..rmax, columns cmin..cmax)."""
    h, w = mark.shape
    flat = mark.ravel()
    stack[0] = r0 * w + c0
    n, area, first, rmin, rmax, cmin, cmax = 1, 0, r0 * w + c0, r0, r0, c0, c0
    while n:
        n -= 1
        i = stack[n]
        if flat[i] != old:
            continue  # filled since it was pushed
        r = i // w
        base = r * w
        a = i - base
        while a > 0 and flat[base + a - 1] == old:
            a -= 1
        b = i - base
        while b + 1 < w and flat[base + b + 1] == old:
            b += 1
        flat[base + a : base + b + 1] = new
        area += b - a + 1
        if base + a < first:
            first = base + a
        rmin, rmax = min(rmin, r), max(rmax, r)
        cmin, cmax = min(cmin, a), max(cmax, b)
        for rr in (r - 1, r + 1):  # one seed per run of unfilled cells next to the span
            if rr < 0 or rr >= h:
                continue
            nb = rr * w
            inrun = False
            for c in range(a, b + 1):
                if flat[nb + c] == old:
                    if not inrun:
                        stack[n] = nb + c
                        n += 1
                        inrun = True
                else:
                    inrun = False
    return area, first, rmin, rmax, cmin, cmax


_BLOCK = 256  # candidates per block of the running maximum


@numba.njit(cache=True)
def _block_max(idx, cl, flat, b, n, only_ones) -> int:
    """Position in ``idx`` of block ``b``'s highest cell (the first of equals; -1: none),
    among cells still marked 1 when ``only_ones``."""
    best = -1
    for t in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
        k = idx[t]
        if only_ones and flat[k] != 1:
            continue
        if best < 0 or cl[k] > cl[idx[best]]:
            best = t
    return best


@numba.njit(cache=True)
def clearance_map(
    dist: np.ndarray,  # (h, w) float32 distance transform of the free cells (in cells)
    res: float,
    clearance: np.ndarray,  # (h, w) float32 out: max(dist * res - res / 2, 0)
    landable_radius: float,  # compared in float32, as numpy compares with a Python float
) -> np.ndarray:
    """``compute_safe_map``'s clearance (numpy's float32 ``dist *= res; dist -= res / 2;
    np.maximum(dist, 0.0)``) written into ``clearance``; returns the landable mask."""
    h, w = dist.shape
    r32, h32, t32 = np.float32(res), np.float32(res / 2), np.float32(landable_radius)
    zero = np.float32(0.0)
    land = np.empty((h, w), np.bool_)
    for r in range(h):
        for c in range(w):
            v = dist[r, c] * r32 - h32
            v = v if v >= zero else zero
            clearance[r, c] = v
            land[r, c] = v >= t32
    return land


@numba.njit(cache=True)
def find_sites(
    landable: np.ndarray,  # (h, w) bool, cropped
    cl: np.ndarray,  # (h, w) float32 clearance, cropped (C-contiguous)
    lo: float,  # candidate bound (compared in float32, as numpy compares with a Python float)
    site: float,  # smallest region maximum with a site (float64 comparison)
    half_res: float,  # plateau depth below the maximum
    min_cells: float,
):
    """``safe_map._sites`` (same regions, order and numbers): (found rows of (first cell,
    max clearance, row, col, area in cells), number of rows, the mark array: > 1 on safe
    regions); number of rows -1: more than 254 safe regions (the caller labels instead).

    The highest candidate left (``np.argmax`` over the cells still marked 1: the first of
    equals in raster order) comes from per-block maxima, a block recomputed only when its
    maximum has been filled since."""
    h, w = landable.shape
    mark = np.zeros((h, w), np.uint8)
    flat = mark.ravel()
    flat_cl = cl.ravel()
    flat_land = landable.ravel()
    lo32 = np.float32(lo)
    idx = np.empty(h * w, np.int64)
    n = 0
    for i in range(h * w):
        if flat_land[i]:
            flat[i] = 1
        if flat_cl[i] >= lo32:
            idx[n] = i
            n += 1
    nb = (n + _BLOCK - 1) // _BLOCK
    bmax = np.empty(nb, np.int64)
    for b in range(nb):  # the first pick reads every candidate, as the first argmax does
        bmax[b] = _block_max(idx, flat_cl, flat, b, n, False)
    stack = np.empty(2 * h * w + 1, np.int64)  # a cell is pushed at most twice
    found = np.zeros((256, 5))
    nf = 0
    v = 2
    first_pick = True
    while True:
        j = -1
        while True:
            j = -1
            for b in range(nb):
                t = bmax[b]
                if t >= 0 and (j < 0 or flat_cl[idx[t]] > flat_cl[idx[j]]):
                    j = t
            if j < 0 or first_pick or flat[idx[j]] == 1:
                break
            b = j // _BLOCK  # filled since (or never marked 1): recompute that block
            bmax[b] = _block_max(idx, flat_cl, flat, b, n, True)
        if j < 0:
            break
        first_pick = False  # from now on only cells still marked 1 count
        i = idx[j]
        md = np.float64(flat_cl[i])
        if md < site:
            break
        if v > 255:
            return found, -1, mark
        area, first, r0, r1, c0, c1 = _fill(mark, i // w, i % w, flat[i], v, stack)
        if area < min_cells:
            _fill(mark, i // w, i % w, v, 0, stack)  # not safe after all
        else:
            thr = np.float32(md - half_res)
            sr, sc, m = 0, 0, 0
            for r in range(r0, r1 + 1):  # the plateau, in raster order (box-relative)
                for c in range(c0, c1 + 1):
                    if mark[r, c] == v and cl[r, c] >= thr:
                        sr += r - r0
                        sc += c - c0
                        m += 1
            mr, mc = sr / m, sc / m
            best, bd = -1, np.inf
            for r in range(r0, r1 + 1):
                for c in range(c0, c1 + 1):
                    if mark[r, c] == v and cl[r, c] >= thr:
                        d2 = (r - r0 - mr) * (r - r0 - mr) + (c - c0 - mc) * (c - c0 - mc)
                        if d2 < bd:
                            best, bd = r * w + c, d2
            found[nf, 0] = first
            found[nf, 1] = md
            found[nf, 2] = best // w
            found[nf, 3] = best % w
            found[nf, 4] = area
            nf += 1
            v += 1
        b = j // _BLOCK  # its own block's maximum is filled now
        bmax[b] = _block_max(idx, flat_cl, flat, b, n, True)
    return found, nf, mark


@numba.njit(cache=True)
def flight_reward_kernel(
    qpos: np.ndarray,  # the quad's 7 qpos values
    qvel: np.ndarray,  # its 6 qvel values
    phi: float,  # this step's shaping potential (computed by the caller: math.hypot)
    phi_prev: float,
    hmap: np.ndarray,  # safe-map height (float32)
    safe: np.ndarray,  # safe map (bool)
    mg: np.ndarray,  # their origin x, y, resolution
    bounds: np.ndarray,  # x0, y0, x1, y1, ztop of the flight volume
    wt: np.ndarray,  # weights: progress, descent, tilt, body_rate, action_change, failure
    dt: float,
    change2: float,  # squared action change
):
    """``RooftopLandingEnv.evaluate`` without contacts: (reward, out of bounds, over the
    safe map, ok), the same operations in the same order (Python's ``max`` spelled out).
    Not ok: x or y is not finite (the caller raises, as the Python path's cell lookup)."""
    x, y, z = qpos[0], qpos[1], qpos[2]
    if not (np.isfinite(x) and np.isfinite(y)):
        return 0.0, True, False, False
    oob = not (bounds[0] <= x <= bounds[2] and bounds[1] <= y <= bounds[3])
    oob = oob or not (-1.0 <= z <= bounds[4])
    reward = wt[0] * (phi - phi_prev)
    gh, over = 0.0, False
    c = int((x - mg[0]) // mg[2])
    r = int((y - mg[1]) // mg[2])
    if 0 <= r < hmap.shape[0] and 0 <= c < hmap.shape[1]:
        gh, over = float(hmap[r, c]), safe[r, c]
    h = z - gh
    sink_allowed = 0.4 + 0.6 * (0.0 if h < 0.0 else h)  # max(h, 0.0)
    s = -qvel[2] - sink_allowed
    reward -= wt[1] * (s if s > 0.0 else 0.0) * dt * 10.0  # max(0.0, s)
    w, qx, qy, qz = qpos[3], qpos[4], qpos[5], qpos[6]
    rz = w * w - qx * qx - qy * qy + qz * qz  # R[2, 2] as quat_to_rot computes it
    reward -= wt[2] * (1.0 - rz) * dt * 10.0
    wx, wy, wz = qvel[3], qvel[4], qvel[5]
    reward -= wt[3] * (wx * wx + wy * wy + wz * wz) + wt[4] * change2
    reward += 0.0  # the (zero) touchdown bonus
    if oob:
        reward -= wt[5]
    return reward, oob, over, True


@numba.njit(cache=True)
def raster_roofs(
    h: int,
    w: int,
    spans: np.ndarray,  # (n, 4) int64 column start/stop, row start/stop; lowest roof first
    z: np.ndarray,  # float64 eave height (flat roofs: the surface)
    slope: np.ndarray,  # float64 slope (deg)
    rid: np.ndarray,  # int64 roof id
    patch: np.ndarray,  # int64 offset of a sloped roof's surface in pz / pf (-1: flat)
    pz: np.ndarray,  # float64 sloped surfaces (each its span, row-major)
    pf: np.ndarray,  # int64 their face index (0..3)
    max_tilt: float,
):
    """``compute_safe_map``'s roof layer: (surface, tilt, roof id, face id, blocked), each
    roof painted over the lower ones, as the Python loop over ``Roof.surface`` did."""
    surface = np.zeros((h, w), np.float32)
    tilt = np.zeros((h, w), np.float32)
    roof = np.full((h, w), -1, np.int16)
    face = np.full((h, w), -1, np.int16)
    blocked = np.zeros((h, w), np.bool_)
    for k in range(spans.shape[0]):
        c0, c1, r0, r1 = spans[k, 0], spans[k, 1], spans[k, 2], spans[k, 3]
        t, i, steep = np.float32(slope[k]), np.int16(rid[k]), slope[k] > max_tilt
        o = patch[k]
        zk = np.float32(z[k])
        f4 = 4 * rid[k]
        n = c1 - c0
        for r in range(r0, r1):
            if o >= 0:
                j = o + (r - r0) * n
                for c in range(n):
                    surface[r, c0 + c] = np.float32(pz[j + c])
                    face[r, c0 + c] = np.int16(f4 + pf[j + c])
            else:
                surface[r, c0:c1] = zk
                face[r, c0:c1] = np.int16(f4)
            tilt[r, c0:c1] = t
            roof[r, c0:c1] = i
            blocked[r, c0:c1] = steep
    return surface, tilt, roof, face, blocked
