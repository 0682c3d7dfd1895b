"""Triangle meshes of MuJoCo geoms, for PyBullet visual shapes (and hfield collision).

Every geom type the tasks use becomes one flat-shaded triangle list in the geom's own frame
(vertices, normals, texture coordinates, indices), so PyBullet's TinyRenderer draws exactly
the compiled MuJoCo geometry, including the current size of resizable geoms, height fields
and meshes, with the material's texture repeat.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

__all__ = [
    "Tri",
    "geom_triangles",
    "hfield_convex_hull",
    "hfield_mesh",
    "hfield_triangles",
    "mat_to_quat_xyzw",
    "INFINITE_PLANE",
]

INFINITE_PLANE = 100.0  # half size (m) drawn for a MuJoCo plane of size 0 (infinite)
_G = mujoco.mjtGeom
_SEG = 16  # segments around cylinders, capsules and spheres


class Tri:
    """A flat-shaded triangle list: ``verts``/``normals`` (n, 3), ``uvs`` (n, 2), ``idx`` (m,)."""

    __slots__ = ("verts", "normals", "uvs", "idx")

    def __init__(self, verts: np.ndarray, normals: np.ndarray, uvs: np.ndarray, idx: np.ndarray):
        self.verts, self.normals, self.uvs, self.idx = verts, normals, uvs, idx


def mat_to_quat_xyzw(mat: np.ndarray) -> list[float]:
    """3x3 (or flat 9) rotation matrix -> PyBullet quaternion (x, y, z, w)."""
    q = np.empty(4)
    mujoco.mju_mat2Quat(q, np.asarray(mat, dtype=np.float64).reshape(9))
    return [float(q[1]), float(q[2]), float(q[3]), float(q[0])]


def _from_faces(v: np.ndarray, faces: np.ndarray, uv: np.ndarray | None = None) -> Tri:
    """Flat shading: three fresh vertices per face with the face normal."""
    tri = v[faces]  # (m, 3, 3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    verts = tri.reshape(-1, 3)
    normals = np.repeat(n, 3, axis=0)
    if uv is None:
        # planar projection along the dominant normal axis
        ax = np.abs(n).argmax(1)
        keep = np.array([[1, 2], [0, 2], [0, 1]])[ax]
        uvs = np.take_along_axis(tri, np.repeat(keep[:, None, :], 3, axis=1), axis=2).reshape(-1, 2)
    else:
        uvs = uv.reshape(-1, 2)
    return Tri(verts, normals, uvs, np.arange(len(verts), dtype=np.int64))


def _box(h: np.ndarray, rep: np.ndarray, uniform: bool) -> Tri:
    verts, normals, uvs, idx = [], [], [], []
    for axis in range(3):
        u, w = (axis + 1) % 3, (axis + 2) % 3
        for sign in (1.0, -1.0):
            base = len(verts)
            for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
                p = np.zeros(3)
                p[axis] = sign * h[axis]
                p[u] = a * h[u]
                p[w] = b * sign * h[w]
                verts.append(p)
                nv = np.zeros(3)
                nv[axis] = sign
                normals.append(nv)
                su = 2 * h[u] if uniform else 1.0
                sw = 2 * h[w] if uniform else 1.0
                uvs.append([(a + 1) / 2 * su * rep[0], (b + 1) / 2 * sw * rep[1]])
            idx += [base, base + 1, base + 2, base, base + 2, base + 3]
    return Tri(np.array(verts), np.array(normals), np.array(uvs), np.array(idx, dtype=np.int64))


def _plane(size: np.ndarray, rep: np.ndarray, uniform: bool) -> Tri:
    sx = size[0] if size[0] > 0 else INFINITE_PLANE
    sy = size[1] if size[1] > 0 else INFINITE_PLANE
    v = np.array([[-sx, -sy, 0], [sx, -sy, 0], [sx, sy, 0], [-sx, sy, 0]], dtype=float)
    su, sw = (2 * sx, 2 * sy) if uniform else (1.0, 1.0)
    uv = np.array([[0, 0], [su, 0], [su, sw], [0, sw]]) * rep
    n = np.tile([0.0, 0.0, 1.0], (4, 1))
    return Tri(v, n, uv, np.array([0, 1, 2, 0, 2, 3], dtype=np.int64))


def _revolve(profile: list[tuple[float, float, float, float]]) -> Tri:
    """Surface of revolution about z from (r, z, nr, nz) rings; smooth normals."""
    t = np.linspace(0.0, 2 * math.pi, _SEG + 1)
    c, s = np.cos(t), np.sin(t)
    verts, normals, uvs = [], [], []
    for k, (r, z, nr, nz) in enumerate(profile):
        for j in range(_SEG + 1):
            verts.append([r * c[j], r * s[j], z])
            normals.append([nr * c[j], nr * s[j], nz])
            uvs.append([j / _SEG, k / max(1, len(profile) - 1)])
    idx = []
    row = _SEG + 1
    for k in range(len(profile) - 1):
        for j in range(_SEG):
            a, b = k * row + j, k * row + j + 1
            c2, d = a + row, b + row
            idx += [a, b, d, a, d, c2]
    return Tri(np.array(verts), np.array(normals), np.array(uvs), np.array(idx, dtype=np.int64))


def _sphere_profile(r: float, z0: float, lo: float, hi: float, n: int) -> list:
    out = []
    for k in range(n + 1):
        a = lo + (hi - lo) * k / n
        out.append((r * math.cos(a), z0 + r * math.sin(a), math.cos(a), math.sin(a)))
    return out


def _cylinder(r: float, h: float) -> Tri:
    prof = [(0.0, -h, 0.0, -1.0), (r, -h, 0.0, -1.0), (r, -h, 1.0, 0.0), (r, h, 1.0, 0.0),
            (r, h, 0.0, 1.0), (0.0, h, 0.0, 1.0)]  # fmt: skip
    return _revolve(prof)


def _capsule(r: float, h: float) -> Tri:
    prof = _sphere_profile(r, -h, -math.pi / 2, 0.0, 4) + _sphere_profile(r, h, 0.0, math.pi / 2, 4)
    return _revolve(prof)


def _ellipsoid(size: np.ndarray) -> Tri:
    tri = _revolve(_sphere_profile(1.0, 0.0, -math.pi / 2, math.pi / 2, 8))
    tri.verts = tri.verts * size
    n = tri.normals / np.maximum(size, 1e-9)
    tri.normals = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    return tri


def _mesh(model: mujoco.MjModel, mid: int) -> Tri:
    va, vn = int(model.mesh_vertadr[mid]), int(model.mesh_vertnum[mid])
    fa, fn = int(model.mesh_faceadr[mid]), int(model.mesh_facenum[mid])
    v = np.asarray(model.mesh_vert[va : va + vn], dtype=float)
    faces = np.asarray(model.mesh_face[fa : fa + fn], dtype=np.int64)
    uv = None
    if int(model.mesh_texcoordnum[mid]) > 0:
        ta = int(model.mesh_texcoordadr[mid])
        tc = np.asarray(model.mesh_texcoord[ta : ta + int(model.mesh_texcoordnum[mid])], float)
        ft = np.asarray(model.mesh_facetexcoord[fa : fa + fn], dtype=np.int64)
        uv = tc[ft]
    return _from_faces(v, faces, uv)


def hfield_mesh(model: mujoco.MjModel, hid: int) -> tuple[np.ndarray, np.ndarray]:
    """A MuJoCo height field as an indexed closed mesh in its geom frame: (verts, faces).

    MuJoCo's hfield spans ``[-sx, sx] x [-sy, sy]``, elevation ``data * sz`` (data normalized
    to [0, 1]) over a base of depth ``size[3]``; rows run along y, columns along x. The mesh
    has the top surface, four side walls down to the base and the bottom.
    """
    nr, nc = int(model.hfield_nrow[hid]), int(model.hfield_ncol[hid])
    sx, sy, sz, base = (float(x) for x in model.hfield_size[hid])
    adr = int(model.hfield_adr[hid])
    z = np.asarray(model.hfield_data[adr : adr + nr * nc], dtype=float).reshape(nr, nc) * sz
    X, Y = np.meshgrid(np.linspace(-sx, sx, nc), np.linspace(-sy, sy, nr))
    top = np.stack([X, Y, z], axis=-1).reshape(-1, 3)
    bot = top.copy()
    bot[:, 2] = -base
    n0 = len(top)
    r, c = np.meshgrid(np.arange(nr - 1), np.arange(nc - 1), indexing="ij")
    a = (r * nc + c).ravel()
    b, d, e = a + 1, a + nc, a + nc + 1
    faces = [np.stack([a, b, e], 1), np.stack([a, e, d], 1)]
    ring = np.concatenate([
        np.arange(nc),
        np.arange(1, nr) * nc + nc - 1,
        (nr - 1) * nc + np.arange(nc - 2, -1, -1),
        np.arange(nr - 2, 0, -1) * nc,
    ])  # fmt: skip
    i, j = ring, np.roll(ring, -1)
    faces += [np.stack([i, n0 + i, n0 + j], 1), np.stack([i, n0 + j, j], 1)]
    c0, c1, c2, c3 = n0, n0 + nc - 1, n0 + nr * nc - 1, n0 + (nr - 1) * nc
    faces.append(np.array([[c0, c2, c1], [c0, c3, c2]]))
    return np.concatenate([top, bot]), np.concatenate(faces).astype(np.int64)


def hfield_convex_hull(
    model: mujoco.MjModel, hid: int, tol: float = 0.005
) -> tuple[np.ndarray, np.ndarray] | None:
    """(corner points, outward-wound triangles) of the height-field solid if it is convex
    within ``tol`` (a concave elevation: shed, gable and hip roofs, no valleys), else None.
    A handful of corners describe such a roof exactly, for collision and for drawing."""
    from scipy.spatial import ConvexHull, QhullError

    verts, _ = hfield_mesh(model, hid)
    top = verts[: len(verts) // 2]
    try:
        hull = ConvexHull(verts)
    except (QhullError, ValueError):
        return None
    eq = hull.equations  # n . p + d <= 0 inside
    up = eq[:, 2] > 1e-9
    if not up.any():
        return None
    n, d = eq[up, :3], eq[up, 3]
    # height of the hull's upper surface above each sample: min over the upward facets
    z_hull = np.min(-(top[:, :2] @ n[:, :2].T + d) / n[:, 2], axis=1)
    if np.any(z_hull - top[:, 2] > tol):
        return None
    tris = hull.simplices.copy()
    p = verts[tris]
    flip = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), eq[:, :3]) < 0
    tris[flip] = tris[flip][:, ::-1]
    keep = np.unique(tris)
    remap = np.full(len(verts), -1, dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    return verts[keep], remap[tris]


def hfield_triangles(model: mujoco.MjModel, hid: int, tol: float = 0.01) -> Tri:
    """A light drawable height field: its convex hull when it is one (see
    ``hfield_convex_hull``), else the coarsest sub-grid that reproduces every sample within
    ``tol`` metres, top with shared vertices and smooth normals, plus flat side walls.

    Few vertices matter: PyBullet never frees a visual mesh, and a task that rewrites its
    height fields per episode gets new ones every episode.
    """
    hull = hfield_convex_hull(model, hid)
    if hull is not None:
        return _from_faces(hull[0], hull[1])
    nr, nc = int(model.hfield_nrow[hid]), int(model.hfield_ncol[hid])
    sx, sy, sz, base = (float(x) for x in model.hfield_size[hid])
    adr = int(model.hfield_adr[hid])
    z = np.asarray(model.hfield_data[adr : adr + nr * nc], dtype=float).reshape(nr, nc) * sz
    rows, cols = _coarse_grid(z, tol)
    zc = z[np.ix_(rows, cols)]
    xs = np.linspace(-sx, sx, nc)[cols]
    ys = np.linspace(-sy, sy, nr)[rows]
    X, Y = np.meshgrid(xs, ys)
    top = np.stack([X, Y, zc], axis=-1).reshape(-1, 3)
    m, n = len(rows), len(cols)
    r, c = np.meshgrid(np.arange(m - 1), np.arange(n - 1), indexing="ij")
    a = (r * n + c).ravel()
    faces = np.concatenate([np.stack([a, a + 1, a + n + 1], 1), np.stack([a, a + n + 1, a + n], 1)])
    tri = top[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(top)
    for k in range(3):
        np.add.at(normals, faces[:, k], fn)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    # side walls: the boundary ring of the top, extruded to the base (flat, outward normals)
    ring = np.concatenate([
        np.arange(n), np.arange(1, m) * n + n - 1, (m - 1) * n + np.arange(n - 2, -1, -1),
        np.arange(m - 2, 0, -1) * n,
    ])  # fmt: skip
    p0, p1 = top[ring], top[np.roll(ring, -1)]
    b0, b1 = p0.copy(), p1.copy()
    b0[:, 2] = b1[:, 2] = -base
    quads = np.stack([p0, b0, b1, p1], axis=1)  # (k, 4, 3)
    out = np.cross(p1 - p0, np.array([0.0, 0.0, 1.0]))
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    k = len(ring)
    side_v = quads.reshape(-1, 3)
    side_n = np.repeat(out, 4, axis=0)
    q = len(top) + 4 * np.arange(k)[:, None]
    side_f = np.concatenate([q + [0, 1, 2], q + [0, 2, 3]])
    verts = np.concatenate([top, side_v])
    uvs = verts[:, :2].copy()
    return Tri(verts, np.concatenate([normals, side_n]), uvs,
               np.concatenate([faces, side_f]).ravel().astype(np.int64))  # fmt: skip


def _coarse_grid(z: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the coarsest regular sub-grid (ends included) whose
    bilinear interpolation reproduces ``z`` within ``tol``."""
    nr, nc = z.shape
    for step in (10, 8, 5, 4, 2):
        if (nr - 1) % step or (nc - 1) % step:
            continue
        rows, cols = np.arange(0, nr, step), np.arange(0, nc, step)
        zc = z[np.ix_(rows, cols)]
        fy = np.interp(np.arange(nr), rows, np.arange(len(rows)))
        fx = np.interp(np.arange(nc), cols, np.arange(len(cols)))
        i0 = np.minimum(np.floor(fy).astype(int), len(rows) - 2)
        j0 = np.minimum(np.floor(fx).astype(int), len(cols) - 2)
        ty, tx = (fy - i0)[:, None], (fx - j0)[None, :]
        a, b = zc[i0][:, j0], zc[i0][:, j0 + 1]
        c, d = zc[i0 + 1][:, j0], zc[i0 + 1][:, j0 + 1]
        rec = (1 - ty) * ((1 - tx) * a + tx * b) + ty * ((1 - tx) * c + tx * d)
        if np.abs(rec - z).max() <= tol:
            return rows, cols
    return np.arange(nr), np.arange(nc)


def geom_triangles(model: mujoco.MjModel, g: int) -> Tri | None:
    """Triangles of geom ``g`` in its own frame, or None for types not drawn (sdf, flex)."""
    t = int(model.geom_type[g])
    size = np.asarray(model.geom_size[g], dtype=float)
    mat = int(model.geom_matid[g])
    rep = np.asarray(model.mat_texrepeat[mat], float) if mat >= 0 else np.ones(2)
    uniform = bool(model.mat_texuniform[mat]) if mat >= 0 else False
    if t == _G.mjGEOM_BOX:
        return _box(size, rep, uniform)
    if t == _G.mjGEOM_PLANE:
        return _plane(size, rep, uniform)
    if t == _G.mjGEOM_SPHERE:
        return _ellipsoid(np.full(3, size[0]))
    if t == _G.mjGEOM_ELLIPSOID:
        return _ellipsoid(size)
    if t == _G.mjGEOM_CYLINDER:
        return _cylinder(size[0], size[1])
    if t == _G.mjGEOM_CAPSULE:
        return _capsule(size[0], size[1])
    if t == _G.mjGEOM_MESH:
        return _mesh(model, int(model.geom_dataid[g]))
    if t == _G.mjGEOM_HFIELD:
        return hfield_triangles(model, int(model.geom_dataid[g]))
    return None
