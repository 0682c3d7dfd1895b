"""What the cameras see of a city: one mesh per material, rewritten in place per episode.

Why: with Mesa's llvmpipe the cost of a frame is dominated by draw calls and triangles, not
pixels. A block shown as ~150 separate box geoms renders ~4x slower than the same boxes merged
into one mesh per material (measured: 97 vs 432 frames/s at 64x64 on a loaded 2-core machine),
and four 41x41 height-field roofs cost more than everything else together. Collisions stay on
the primitive pool and height fields (``scene.py``), hidden from the renderer.

Each mesh is compiled with room for ``n_box`` boxes, ``n_prism`` prisms (upright cylinders
drawn with ``PRISM_SIDES`` sides) and ``n_tri`` free triangles (a sloped roof solid is about
ten). Per episode ``CityMeshes.write`` overwrites vertices, normals, texture coordinates and
faces of the used shapes, packs their faces first and sets ``mesh_facenum`` to the used count,
so unused room costs nothing to draw; the changed meshes must then be uploaded to the GL
context (``mjr_uploadMesh``, done lazily before a render). Texture coordinates are metres along
each face, so a material's ``texrepeat`` is repeats per metre on every shape whatever its size.
"""

from __future__ import annotations

import mujoco
import numpy as np

__all__ = ["PRISM_SIDES", "MESH_PREFIX", "add_city_meshes", "draw_order", "CityMeshes"]

PRISM_SIDES = 10
MESH_PREFIX = "citymesh_"

# box corners (x-major sign pattern), the six faces as outward-wound quads and their normals
_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_QUADS = np.array(
    [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
)
_NORM6 = np.array([[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], float)
_TANGENT = np.array([(1, 2), (1, 2), (0, 2), (0, 2), (0, 1), (0, 1)])  # face axes used for uv
_BOX_FACE = np.concatenate([_QUADS[:, [0, 1, 2]], _QUADS[:, [0, 2, 3]]])  # (12, 3)
_BOX_FN = np.concatenate([np.arange(6), np.arange(6)])  # normal of each triangle
_BOX_FT = np.concatenate(
    [4 * np.arange(6)[:, None] + [0, 1, 2], 4 * np.arange(6)[:, None] + [0, 2, 3]]
)  # texcoord corners of each triangle

_N = PRISM_SIDES
_ang = 2 * np.pi * np.arange(_N) / _N
_RING = np.stack([np.cos(_ang), np.sin(_ang)], axis=1)
_mid = _ang + np.pi / _N
_PRISM_NORM = np.concatenate(
    [np.stack([np.cos(_mid), np.sin(_mid), np.zeros(_N)], 1), [[0, 0, -1], [0, 0, 1]]]
)
_i, _j = np.arange(_N), (np.arange(_N) + 1) % _N
# vertices: bottom ring 0..n-1, top ring n..2n-1, bottom centre 2n, top centre 2n+1
_PRISM_FACE = np.concatenate(
    [
        np.stack([_i, _j, _N + _j], 1),
        np.stack([_i, _N + _j, _N + _i], 1),
        np.stack([np.full(_N, 2 * _N), _j, _i], 1),
        np.stack([np.full(_N, 2 * _N + 1), _N + _i, _N + _j], 1),
    ]
)
_PRISM_FN = np.concatenate([_i, _i, np.full(_N, _N), np.full(_N, _N + 1)])
BOX_V, BOX_N, BOX_T, BOX_F = 8, 6, 24, 12
PRISM_V, PRISM_N, PRISM_T, PRISM_F = 2 * _N + 2, _N + 2, 2 * _N + 2, 4 * _N


def _template(
    n_box: int, n_prism: int, n_tri: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Compile-time content: well-separated small shapes (valid volume, distinct vertices)."""
    vb = (0.2 * _SIGNS[None] + rng.uniform(-500, 500, (n_box, 1, 3))).reshape(-1, 3)
    z = 0.2 * np.ones(_N)
    ring = np.concatenate(
        [np.c_[0.2 * _RING, -z], np.c_[0.2 * _RING, z], [[0, 0, -0.2], [0, 0, 0.2]]]
    )
    vp = (ring[None] + rng.uniform(-500, 500, (n_prism, 1, 3))).reshape(-1, 3)
    fb = (_BOX_FACE[None] + BOX_V * np.arange(n_box)[:, None, None]).reshape(-1, 3)
    fp = (_PRISM_FACE[None] + PRISM_V * np.arange(n_prism)[:, None, None]).reshape(-1, 3)
    nb = (_BOX_FN[None] + BOX_N * np.arange(n_box)[:, None]).reshape(-1)
    npr = (_PRISM_FN[None] + PRISM_N * np.arange(n_prism)[:, None]).reshape(-1)
    tb = (_BOX_FT[None] + BOX_T * np.arange(n_box)[:, None, None]).reshape(-1, 3)
    tp = fp.copy()
    # triangle soup: closed little tetrahedra (4 triangles each, 3 vertices per triangle)
    tet = 0.3 * np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    tet_f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]])
    offs = rng.uniform(-500, 500, (n_tri // 4, 1, 3))
    vt = (tet[None] + offs)[:, tet_f].reshape(-1, 3)
    ft = np.arange(3 * n_tri).reshape(-1, 3)
    vb_n, vp_n = len(vb), len(vp)
    return {
        "vert": np.concatenate([vb, vp, vt]),
        "face": np.concatenate([fb, fp + vb_n, ft + vb_n + vp_n]),
        "normal": np.concatenate([np.tile(_NORM6, (n_box, 1)), np.tile(_PRISM_NORM, (n_prism, 1)),
                                  np.tile([[0.0, 0.0, 1.0]], (n_tri, 1))]),
        "facenormal": np.concatenate([np.repeat(nb, 3).reshape(-1, 3),
                                      np.repeat(npr + BOX_N * n_box, 3).reshape(-1, 3),
                                      np.repeat(np.arange(n_tri) + BOX_N * n_box
                                                + PRISM_N * n_prism, 3).reshape(-1, 3)]),
        "texcoord": np.zeros((BOX_T * n_box + PRISM_T * n_prism + 3 * n_tri, 2)),
        "facetexcoord": np.concatenate([tb, tp + BOX_T * n_box,
                                        ft + BOX_T * n_box + PRISM_T * n_prism]),
    }  # fmt: skip


def draw_order(slots) -> list[str]:
    """Slot names in the order their geoms are added, which is the order MuJoCo draws opaque
    geoms in: roofs, then clutter, then facades. Cameras mostly look down on the city, so
    roofs drawn first hide most of the walls and the street behind them and llvmpipe skips
    shading those fragments (depth test first): ~10 % of a 64x64 downward frame, measured
    with identical pixels (a different order changes only exact depth ties, and there are
    none between a roof and what lies below it)."""
    rank = lambda n: 0 if n.startswith("roof") else 2 if n.startswith("facade") else 1  # noqa: E731
    return sorted(slots, key=rank)


def add_city_meshes(
    spec: mujoco.MjSpec, slots: dict[str, tuple[str, int, int, int]], group: int = 2
) -> None:
    """One non-colliding mesh geom per slot: ``slots[name] = (material, n_box, n_prism,
    n_tri)`` (``n_tri`` a multiple of 4), added in ``draw_order``."""
    rng = np.random.default_rng(0)
    for name in draw_order(slots):
        material, n_box, n_prism, n_tri = slots[name]
        if n_tri % 4:
            raise ValueError(f"city mesh {name!r}: n_tri must be a multiple of 4, got {n_tri}")
        t = _template(n_box, n_prism, n_tri, rng)
        mesh = spec.add_mesh(
            name=MESH_PREFIX + name,
            uservert=t["vert"].ravel().tolist(),
            userface=t["face"].ravel().tolist(),
            usernormal=t["normal"].ravel().tolist(),
            userfacenormal=t["facenormal"].ravel().tolist(),
            usertexcoord=t["texcoord"].ravel().tolist(),
            userfacetexcoord=t["facetexcoord"].ravel().tolist(),
        )
        mesh.maxhullvert = 4  # never collides: keep the compile-time hull trivial
        spec.worldbody.add_geom(name=MESH_PREFIX + name, type=mujoco.mjtGeom.mjGEOM_MESH,
                                meshname=MESH_PREFIX + name, material=material, contype=0,
                                conaffinity=0, group=group, mass=0.0)  # fmt: skip


def _rotmats(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q.T
    return np.stack(
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1,
    ).reshape(-1, 3, 3)  # fmt: skip


class CityMeshes:
    """Rewrites the slot meshes of a compiled model (see the module docstring)."""

    def __init__(
        self,
        model: mujoco.MjModel,
        slots: dict[str, tuple[str, int, int, int]],
        group: int = 2,
        hidden_group: int = 5,
    ):
        self.slots = dict(slots)
        self.group, self.hidden_group = group, hidden_group
        self.mesh: dict[str, int] = {}
        self.geom: dict[str, int] = {}
        self._tables: dict[str, tuple] = {}
        for name, (_, n_box, n_prism, n_tri) in slots.items():
            mid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MESH, MESH_PREFIX + name)
            gid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, MESH_PREFIX + name)
            if mid < 0 or gid < 0:
                raise ValueError(f"model has no city mesh {name!r}: build it with add_city_meshes")
            nb, npr, nt = n_box, n_prism, n_tri
            want = (
                BOX_V * nb + PRISM_V * npr + 3 * nt,
                BOX_F * nb + PRISM_F * npr + nt,
                BOX_N * nb + PRISM_N * npr + nt,
                BOX_T * nb + PRISM_T * npr + 3 * nt,
            )
            got = (int(model.mesh_vertnum[mid]), int(model.mesh_facenum[mid]),
                   int(model.mesh_normalnum[mid]), int(model.mesh_texcoordnum[mid]))  # fmt: skip
            if got != want:  # MuJoCo's mesh processing changed the layout we rewrite
                raise RuntimeError(f"city mesh {name!r} compiled to {got}, expected {want}")
            self.mesh[name], self.geom[name] = mid, gid
            # face tables for the full capacity, sliced per episode (used shapes come first)
            t = _template(n_box, n_prism, n_tri, np.random.default_rng(0))
            vp0, vt0 = BOX_V * nb, BOX_V * nb + PRISM_V * npr
            fb, fpr, ftr = BOX_F * nb, PRISM_F * npr, nt
            self._tables[name] = tuple(
                (t[key][:fb], t[key][fb : fb + fpr], t[key][fb + fpr : fb + fpr + ftr])
                for key in ("face", "facenormal", "facetexcoord")
            )
            assert vp0 >= 0 and vt0 >= 0
        self.dirty: set[int] = set()

    def write(
        self,
        model: mujoco.MjModel,
        boxes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        prisms: tuple[np.ndarray, np.ndarray, np.ndarray],
        tris: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        """Rewrite every slot mesh; slots without shapes are emptied. Marks meshes for upload.

        ``boxes = (slot (k,) str, pos (k,3), half (k,3), quat (k,4))``; ``prisms = (slot,
        pos (k,3), (radius, half height) (k,2))``; ``tris[slot] = (corners (k,3,3) wound
        counter-clockwise seen from outside, uv (k,3,2))``. Geometry is computed for all
        shapes at once, then copied per slot (cheap per episode).
        """
        m = model
        tris = tris or {}
        bslot, bpos, bhalf, bquat = boxes
        pslot, ppos, psz = prisms
        # all boxes: corners, face normals, uv in metres along each face's axes
        kb_all = len(bpos)
        if kb_all:
            rot = _rotmats(np.asarray(bquat, float))
            local = _SIGNS[None] * np.asarray(bhalf)[:, None, :]
            corners = np.asarray(bpos)[:, None, :] + np.einsum("kij,kcj->kci", rot, local)
            bnorm = np.einsum("kij,fj->kfi", rot, _NORM6)
            ax = rot[:, :, _TANGENT]  # (k, 3, 6, 2) tangent axes per face
            buv = np.einsum("kfcj,kjfa->kfca", corners[:, _QUADS], ax).reshape(kb_all, BOX_T, 2)
        # all prisms: rings, centres
        kp_all = len(ppos)
        if kp_all:
            c = np.asarray(ppos, float)
            r, hh = psz[:, 0], psz[:, 1]
            ring_xy = c[:, None, :2] + r[:, None, None] * _RING[None]
            zb = np.repeat((c[:, 2] - hh)[:, None, None], _N, 1)
            zt = np.repeat((c[:, 2] + hh)[:, None, None], _N, 1)
            pv = np.concatenate([np.concatenate([ring_xy, zb], 2), np.concatenate([ring_xy, zt], 2),
                                 np.c_[c[:, :2], c[:, 2] - hh][:, None],
                                 np.c_[c[:, :2], c[:, 2] + hh][:, None]], 1)  # fmt: skip
        for name, (_, n_box, n_prism, n_tri) in self.slots.items():
            mid, gid = self.mesh[name], self.geom[name]
            bi = np.flatnonzero(bslot == name) if kb_all else np.zeros(0, int)
            pi = np.flatnonzero(pslot == name) if kp_all else np.zeros(0, int)
            tv, tuv = tris.get(name, (np.zeros((0, 3, 3)), np.zeros((0, 3, 2))))
            kb, kp, kt = len(bi), len(pi), len(tv)
            if kb > n_box or kp > n_prism or kt > n_tri:
                raise ValueError(
                    f"city mesh {name!r} holds {n_box} boxes, {n_prism} prisms and {n_tri} "
                    f"triangles, got {kb}, {kp} and {kt}"
                )
            va, fa = int(m.mesh_vertadr[mid]), int(m.mesh_faceadr[mid])
            na, ta = int(m.mesh_normaladr[mid]), int(m.mesh_texcoordadr[mid])
            vp0, np0, tp0 = BOX_V * n_box, BOX_N * n_box, BOX_T * n_box
            vt0 = vp0 + PRISM_V * n_prism
            nt0, tt0 = np0 + PRISM_N * n_prism, tp0 + PRISM_T * n_prism
            if kb:
                m.mesh_vert[va : va + BOX_V * kb] = corners[bi].reshape(-1, 3)
                m.mesh_normal[na : na + BOX_N * kb] = bnorm[bi].reshape(-1, 3)
                m.mesh_texcoord[ta : ta + BOX_T * kb] = buv[bi].reshape(-1, 2)
            if kp:
                m.mesh_vert[va + vp0 : va + vp0 + PRISM_V * kp] = pv[pi].reshape(-1, 3)
                m.mesh_normal[na + np0 : na + np0 + PRISM_N * kp] = np.tile(_PRISM_NORM, (kp, 1))
            if kt:
                tv = np.asarray(tv, float)
                nrm = np.cross(tv[:, 1] - tv[:, 0], tv[:, 2] - tv[:, 0])
                nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
                m.mesh_vert[va + vt0 : va + vt0 + 3 * kt] = tv.reshape(-1, 3)
                m.mesh_normal[na + nt0 : na + nt0 + kt] = nrm
                m.mesh_texcoord[ta + tt0 : ta + tt0 + 3 * kt] = np.asarray(tuv).reshape(-1, 2)
            # faces of the used shapes, packed first (tables precomputed for full capacity)
            nfb, nfp = BOX_F * kb, PRISM_F * kp
            nf = nfb + nfp + kt
            for arr, (tb_, tp_, tt_) in zip(
                (m.mesh_face, m.mesh_facenormal, m.mesh_facetexcoord), self._tables[name]
            ):
                arr[fa : fa + nfb] = tb_[:nfb]
                arr[fa + nfb : fa + nfb + nfp] = tp_[:nfp]
                arr[fa + nfb + nfp : fa + nf] = tt_[:kt]
            m.mesh_facenum[mid] = nf
            m.geom_pos[gid] = 0.0
            m.geom_quat[gid] = (1.0, 0.0, 0.0, 0.0)
            m.geom_group[gid] = self.group if nf else self.hidden_group  # nothing to draw
            self.dirty.add(mid)

    def upload(self, upload) -> None:
        """``upload(mesh_id)`` every mesh written since the last upload."""
        for mid in sorted(self.dirty):
            upload(mid)
        self.dirty = set()
