"""City data -> MuJoCo: a fixed pool of primitives compiled once, edited in place per episode.

``add_city_pool`` declares the street, the sky, the sun, the appearance slots, a pool of boxes,
upright cylinders and height fields in the world body (the collision geometry) and one mesh per
material (what cameras see, ``visual.py``). ``CityPool.apply`` writes one ``City`` into the
compiled model: poses, sizes, height-field elevations and collision bits of the pool (unused
entries are parked underground in geom group 5 without collisions; used boxes and cylinders
sit in group 3, which renderers skip), and refits the world body's bounding-volume hierarchy
so collisions stay exact; the material meshes follow when first drawn (``flush_meshes``, run
by ``upload``: state-only episodes skip ~2 ms of mesh work per reset). No recompilation: the
GL context, textures and parameter registry survive (per-reset cost in
``benchmarks/bench_rooftop_landing.py``). Sloped roofs collide as height fields (group 3) and
are drawn as a few exact triangles (``roof_triangles``) in the ``roof_slope`` mesh.

Why not static geoms moved in place without the refit: MuJoCo's midphase uses a BVH of the
world body built at compile time; moving or resizing a geom without refitting it makes
collisions silently disappear (checked in ``tests/test_city.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

import simenvs.core.scene as scene

from .city import CLUTTER_KINDS, HF_BASE, KIND_LIMITS, City
from .visual import CityMeshes, add_city_meshes

__all__ = [
    "POOL_BOXES",
    "POOL_CYLINDERS",
    "POOL_HFIELDS",
    "HF_SIZE",
    "HIDDEN_GROUP",
    "ROLE_NONE",
    "ROLE_SURFACE",
    "ROLE_OBSTACLE",
    "ROLE_STREET",
    "add_city_pool",
    "CityPool",
]

POOL_BOXES = 200
POOL_CYLINDERS = 48
POOL_HFIELDS = 4
HF_SIZE = 41  # height-field samples per side (odd: a centred ridge falls on a sample line)
HIDDEN_GROUP = 5  # unused pool entries
CITY_GROUP = 0  # street and sky
COLLISION_GROUP = 3  # used pool boxes and cylinders: collide, not drawn
MESH_GROUP = 2  # the material meshes: drawn, never collide
# contact classes of geoms (CityPool.role)
ROLE_NONE, ROLE_SURFACE, ROLE_OBSTACLE, ROLE_STREET = 0, 1, 2, 3

# appearance slots: textures (pattern randomized) and plain colours
TEXTURES = {
    "facade_a": dict(texrepeat=(0.35, 0.35), rgb1=(0.62, 0.55, 0.47), rgb2=(0.35, 0.38, 0.45)),
    "facade_b": dict(texrepeat=(0.3, 0.3), rgb1=(0.7, 0.7, 0.68), rgb2=(0.3, 0.33, 0.38)),
    "roof_a": dict(texrepeat=(0.5, 0.5), rgb1=(0.32, 0.32, 0.34), rgb2=(0.28, 0.28, 0.3)),
    "roof_b": dict(texrepeat=(0.5, 0.5), rgb1=(0.62, 0.6, 0.56), rgb2=(0.55, 0.53, 0.5)),
    "roof_slope": dict(texrepeat=(1.0, 1.0), rgb1=(0.55, 0.27, 0.2), rgb2=(0.45, 0.22, 0.17)),
    "street": dict(texrepeat=(0.1, 0.1), rgb1=(0.26, 0.26, 0.28), rgb2=(0.3, 0.3, 0.31)),
}
COLORS = {
    "parapet": (0.52, 0.5, 0.47, 1.0),
    "ac_unit": (0.82, 0.82, 0.8, 1.0),
    "stair_entrance": (0.6, 0.55, 0.5, 1.0),
    "skylight": (0.45, 0.62, 0.75, 1.0),
    "vent": (0.7, 0.7, 0.72, 1.0),
    "water_tank": (0.45, 0.32, 0.22, 1.0),
    "antenna": (0.78, 0.78, 0.8, 1.0),
    "solar_panel": (0.1, 0.14, 0.35, 1.0),
    "solar_rail": (0.6, 0.6, 0.62, 1.0),
    "sky": (0.62, 0.76, 0.95, 1.0),
}
# prim kind -> colour slot (kinds not listed use their own name)
_KIND_COLOR = {"tank_leg": "water_tank", "antenna_base": "antenna"}
# material meshes: slot -> (material, boxes, prisms) they can hold. Buildings: at most two
# boxes (volume + roof slab, or a setback tower's) per lot, <= 26 lots with the default
# CityParams; clutter: KIND_LIMITS, which the generator enforces.
BUILDING_MESH_BOXES = 64


def _slot_capacity(slot: str) -> tuple[int, int]:
    kinds = [k for k in (*CLUTTER_KINDS, "parapet") if _KIND_COLOR.get(k, k) == slot]
    boxes = sum(KIND_LIMITS[k] for k in kinds if k not in _CYLINDER_KINDS)
    prisms = sum(KIND_LIMITS[k] for k in kinds if k in _CYLINDER_KINDS)
    return boxes, prisms


_CYLINDER_KINDS = ("vent", "water_tank", "antenna")
ROOF_TRIS = 20  # triangles of one sloped roof solid (top faces + end walls), at most
MESH_SLOTS = {
    **{k: (scene.TEXTURE_PREFIX + k, BUILDING_MESH_BOXES, 0, 0)
       for k in ("facade_a", "facade_b", "roof_a", "roof_b")},
    "roof_slope": (scene.TEXTURE_PREFIX + "roof_slope", 0, 0, ROOF_TRIS * POOL_HFIELDS),
    **{k: (scene.COLOR_PREFIX + k, *_slot_capacity(k), 0) for k in COLORS if k != "sky"},
}  # fmt: skip
assert {_KIND_COLOR.get(k, k) for k in CLUTTER_KINDS} <= set(MESH_SLOTS)


def add_city_pool(
    spec: mujoco.MjSpec,
    *,
    n_box: int = POOL_BOXES,
    n_cyl: int = POOL_CYLINDERS,
    n_hf: int = POOL_HFIELDS,
    extent: float = 60.0,
) -> None:
    """Street, sky, sun, an overview camera, appearance slots and the primitive pool."""
    scene.fast_visual(spec, 256, 256)
    spec.stat.extent = extent
    spec.stat.center = [0.0, 0.0, 10.0]
    spec.visual.map.znear = 0.03 / extent  # 3 cm: the down camera sits just above the roof
    spec.visual.map.zfar = 1500.0 / extent
    spec.visual.headlight.ambient = [0.25, 0.25, 0.25]
    spec.visual.headlight.diffuse = [0.3, 0.3, 0.3]
    spec.visual.headlight.specular = [0.0, 0.0, 0.0]
    # mesh materials take the meshes' texture coordinates (metres); texuniform would override
    # them, so it is only on for the street plane
    mats = {
        k: scene.add_random_texture(spec, k, texuniform=k == "street", **v)
        for k, v in TEXTURES.items()
    }
    for k, rgba in COLORS.items():
        scene.add_random_color(spec, k, rgba)
    spec.material("rc_sky").emission = 0.35
    for k in ("rt_street", "rt_facade_a", "rt_facade_b", "rt_roof_a", "rt_roof_b"):
        spec.material(k).specular = 0.1
    wb = spec.worldbody
    wb.add_geom(name="street", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[300, 300, 50],
                material=mats["street"], group=CITY_GROUP)  # fmt: skip
    # sky: a box seen from inside (faces wound inward so back-face culling keeps them)
    v = [[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = [t for a, b, c, d in quads for t in ((a, c, b), (a, d, c))]
    spec.add_mesh(
        name="sky",
        uservert=[c for p in v for c in p],
        userface=[i for f in faces for i in f],
        scale=[500.0, 500.0, 250.0],
    )
    wb.add_geom(name="sky", type=mujoco.mjtGeom.mjGEOM_MESH, meshname="sky", pos=[0, 0, 200],
                material="rc_sky", contype=0, conaffinity=0, group=CITY_GROUP,
                mass=0.0)  # fmt: skip
    wb.add_light(
        name="sun",
        pos=[0.0, 0.0, 80.0],
        dir=[0.35, 0.25, -1.0],
        type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL,
        castshadow=False,
        diffuse=[0.75, 0.73, 0.7],
        ambient=[0.2, 0.2, 0.22],
        specular=[0.1, 0.1, 0.1],
    )
    wb.add_camera(name="overview", pos=[0.0, -55.0, 60.0], xyaxes=[1, 0, 0, 0, 0.7, 0.7],
                  fovy=55.0)  # fmt: skip
    # collidable at compile time so they become leaves of the world BVH (MuJoCo leaves
    # non-colliding geoms out); apply() switches unused ones off
    hidden = dict(contype=1, conaffinity=1, group=HIDDEN_GROUP, pos=[0.0, 0.0, -100.0])
    add_city_meshes(spec, MESH_SLOTS, group=MESH_GROUP)
    for i in range(n_box):
        wb.add_geom(name=f"city_box{i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1] * 3,
                    material=mats["facade_a"], **hidden)  # fmt: skip
    for i in range(n_cyl):
        wb.add_geom(name=f"city_cyl{i}", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                    size=[0.1, 0.1, 0.0], material=mats["facade_a"], **hidden)  # fmt: skip
    for i in range(n_hf):
        hf = spec.add_hfield(name=f"city_hf{i}", nrow=HF_SIZE, ncol=HF_SIZE,
                             size=[1.0, 1.0, 1.0, HF_BASE])  # fmt: skip
        hf.userdata = [0.0] * (HF_SIZE * HF_SIZE)
        wb.add_geom(name=f"city_roof{i}", type=mujoco.mjtGeom.mjGEOM_HFIELD,
                    hfieldname=f"city_hf{i}", material=mats["roof_slope"], **hidden)  # fmt: skip


def _quat_mats(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        axis=1,
    ).reshape(-1, 3, 3)  # fmt: skip


@dataclass
class _Bvh:
    leaf_node: np.ndarray  # BVH node of each pool geom (same order as CityPool.geoms)
    levels: list[
        tuple[np.ndarray, np.ndarray, np.ndarray]
    ]  # (nodes, child1, child2), deepest first


class CityPool:
    """Writes a ``City`` into a model built with ``add_city_pool`` (in place, no recompile).

    After ``apply``: ``role[geom]`` is ROLE_SURFACE for roof slabs and sloped roofs,
    ROLE_OBSTACLE for facades, parapets and clutter, ROLE_STREET for the street;
    ``prim_of[geom]`` the index of the city prim it shows (-1: none) and ``roof_of[geom]``
    the roof id of a sloped-roof height field (-1: none).
    """

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        gid = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, n)  # noqa: E731
        self.boxes = self._ids(model, "city_box", mujoco.mjtObj.mjOBJ_GEOM)
        self.cyls = self._ids(model, "city_cyl", mujoco.mjtObj.mjOBJ_GEOM)
        self.roofs = self._ids(model, "city_roof", mujoco.mjtObj.mjOBJ_GEOM)
        self.hfields = np.array([model.geom_dataid[g] for g in self.roofs], dtype=np.int64)
        self.geoms = np.concatenate([self.boxes, self.cyls, self.roofs])
        self.meshes = CityMeshes(model, MESH_SLOTS, group=MESH_GROUP, hidden_group=HIDDEN_GROUP)
        self._mesh_geoms = np.array(list(self.meshes.geom.values()), dtype=np.int64)
        self.static_geoms = np.concatenate([self.geoms, self._mesh_geoms])
        self.street = gid("street")
        mat = lambda n: mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_MATERIAL, n)  # noqa: E731
        self.mat = {k: mat(scene.TEXTURE_PREFIX + k) for k in TEXTURES}
        self.mat |= {k: mat(scene.COLOR_PREFIX + k) for k in COLORS}
        self.role = np.zeros(model.ngeom, np.int8)
        self.role[self.street] = ROLE_STREET
        self.prim_of = np.full(model.ngeom, -1, np.int64)
        self.roof_of = np.full(model.ngeom, -1, np.int64)
        self.bvh = self._bvh_plan(model)
        self.city: City | None = None
        self._pending: tuple | None = None  # mesh inputs of the last apply, not yet written

    @staticmethod
    def _ids(model: mujoco.MjModel, prefix: str, obj: mujoco.mjtObj) -> np.ndarray:
        out = []
        while (i := mujoco.mj_name2id(model, obj, f"{prefix}{len(out)}")) >= 0:
            out.append(i)
        if not out:
            raise ValueError(f"model has no {prefix}0..: build it with add_city_pool()")
        return np.array(out, dtype=np.int64)

    def _bvh_plan(self, model: mujoco.MjModel) -> _Bvh:
        adr, num = int(model.body_bvhadr[0]), int(model.body_bvhnum[0])
        nodes = np.arange(adr, adr + num)
        nodeid = model.bvh_nodeid[nodes]
        where = {int(g): int(n) for n, g in zip(nodes, nodeid) if g >= 0}
        missing = [int(g) for g in self.geoms if int(g) not in where]
        if missing:
            raise ValueError(f"pool geoms {missing} are not leaves of the world body's BVH")
        leaf = np.array([where[int(g)] for g in self.geoms], dtype=np.int64)
        inner = nodes[nodeid < 0]
        depth = model.bvh_depth[inner]
        levels = []
        for dlev in sorted(set(depth.tolist()), reverse=True):
            ns = inner[depth == dlev]
            ch = model.bvh_child[ns]
            levels.append((ns, ch[:, 0], ch[:, 1]))
        return _Bvh(leaf, levels)

    # ------------------------------------------------------------------ apply
    def capacity(self) -> dict[str, int]:
        return {"box": len(self.boxes), "cylinder": len(self.cyls), "hfield": len(self.roofs)}

    def apply(self, city: City, model: mujoco.MjModel | None = None) -> None:
        """Show ``city``: every pool entry is written (used or hidden), the material meshes
        rewritten, then the BVH refit. Uploads to a GL context are left to ``upload``."""
        m = self.model if model is None else model
        prims = city.prims
        arr = city.arrays
        is_box = ~arr["cyl"]
        bi, ci = np.flatnonzero(is_box), np.flatnonzero(arr["cyl"])
        sloped = [r for r in city.roofs if r.sloped]
        cap = self.capacity()
        if len(bi) > cap["box"] or len(ci) > cap["cylinder"] or len(sloped) > cap["hfield"]:
            raise ValueError(
                f"city needs {len(bi)} boxes, {len(ci)} cylinders, {len(sloped)} sloped "
                f"roofs; the pool holds {cap} (CityParams.max_boxes/max_cylinders/max_sloped)"
            )
        slots = self.slots_of(city)
        obstacle = np.array([p.role != "slab" for p in prims], bool)

        g_all = self.geoms
        self.role[g_all] = ROLE_NONE
        self.prim_of[g_all] = -1
        self.roof_of[g_all] = -1
        m.geom_pos[g_all] = (0.0, 0.0, -100.0)
        m.geom_quat[g_all] = (1.0, 0.0, 0.0, 0.0)
        m.geom_group[g_all] = HIDDEN_GROUP
        m.geom_contype[g_all] = 0
        m.geom_conaffinity[g_all] = 0

        for pool, idx in ((self.boxes, bi), (self.cyls, ci)):
            if not len(idx):
                continue
            g = pool[: len(idx)]
            m.geom_pos[g] = arr["pos"][idx]
            m.geom_quat[g] = arr["quat"][idx]
            m.geom_size[g] = arr["size"][idx]
            local = arr["size"][idx] if pool is self.boxes else arr["size"][idx][:, [0, 0, 1]]
            m.geom_aabb[g] = np.concatenate([np.zeros_like(local), local], axis=1)
            m.geom_rbound[g] = np.linalg.norm(local, axis=1)
            m.geom_group[g] = COLLISION_GROUP
            m.geom_contype[g] = 1
            m.geom_conaffinity[g] = 1
            m.geom_matid[g] = [self.mat[slots[i]] for i in idx.tolist()]
            self.role[g] = np.where(obstacle[idx], ROLE_OBSTACLE, ROLE_SURFACE)
            self.prim_of[g] = idx

        for k, r in enumerate(sloped):
            g, h = int(self.roofs[k]), int(self.hfields[k])
            x0, y0, x1, y1 = r.rect
            rise = max(r.rise, 1e-3)
            n = int(m.hfield_nrow[h])
            xs = np.linspace(x0, x1, int(m.hfield_ncol[h]))
            ys = np.linspace(y0, y1, n)
            z, _ = r.surface(xs[None, :], ys[:, None])
            adr = int(m.hfield_adr[h])
            m.hfield_data[adr : adr + z.size] = ((z - r.z) / rise).ravel()
            sx, sy = (x1 - x0) / 2, (y1 - y0) / 2
            m.hfield_size[h] = (sx, sy, rise, HF_BASE)
            m.geom_pos[g] = ((x0 + x1) / 2, (y0 + y1) / 2, r.z)
            m.geom_aabb[g] = (0.0, 0.0, (rise - HF_BASE) / 2, sx, sy, (rise + HF_BASE) / 2)
            m.geom_rbound[g] = float(np.sqrt(sx * sx + sy * sy + max(rise, HF_BASE) ** 2))
            m.geom_group[g] = COLLISION_GROUP  # drawn as a few triangles in the roof mesh
            m.geom_contype[g] = 1
            m.geom_conaffinity[g] = 1
            m.geom_matid[g] = self.mat["roof_slope"]
            self.role[g] = ROLE_SURFACE
            self.roof_of[g] = r.id

        # what cameras see: the same shapes merged into one mesh per material, written when
        # first needed (``flush_meshes``: before an upload; state-only episodes never draw)
        slot_arr = np.array(slots)
        boxes = (slot_arr[bi], arr["pos"][bi], arr["size"][bi], arr["quat"][bi])
        prisms = (slot_arr[ci], arr["pos"][ci], arr["size"][ci][:, :2])
        self._pending = (m, boxes, prisms, sloped)
        # the meshes hold world coordinates: their geoms sit at the origin now (static poses
        # are copied from here at reset, before the meshes are written)
        mesh_geoms = self._mesh_geoms
        m.geom_pos[mesh_geoms] = 0.0
        m.geom_quat[mesh_geoms] = (1.0, 0.0, 0.0, 0.0)
        self._refit(m)
        self.city = city

    def flush_meshes(self) -> None:
        """Write the material meshes of the last ``apply`` into the model (if not yet done)."""
        if self._pending is None:
            return
        m, boxes, prisms, sloped = self._pending
        self._pending = None
        tris = [roof_triangles(r) for r in sloped]
        roof_tris = {}
        if tris:
            roof_tris["roof_slope"] = (np.concatenate([t for t, _ in tris]),
                                       np.concatenate([u for _, u in tris]))  # fmt: skip
        self.meshes.write(m, boxes, prisms, roof_tris)

    def slots_of(self, city: City) -> list[str]:
        """Appearance slot of every prim: a facade / roof variant per building (fixed by the
        city seed) or the colour of its clutter kind."""
        vr = np.random.default_rng(city.seed + 7)
        n_bld = 1 + max([r.building for r in city.roofs], default=0)
        fac = ["facade_a" if u < 0.5 else "facade_b" for u in vr.random(n_bld).tolist()]
        roof = ["roof_a" if u < 0.5 else "roof_b" for u in vr.random(n_bld).tolist()]
        bld_of_prim = self._building_of_prims(city)
        roofs = city.roofs
        out = []
        for i, p in enumerate(city.prims):
            if p.role == "building":
                out.append(fac[bld_of_prim[i]])
            elif p.role == "slab":
                out.append(roof[roofs[p.roof].building])
            else:
                out.append(_KIND_COLOR.get(p.kind, p.kind))
        return out

    @staticmethod
    def _building_of_prims(city: City) -> dict[int, int]:
        """Building index of every 'building' prim (by footprint containment)."""
        out = {}
        for i, p in enumerate(city.prims):
            if p.role != "building":
                continue
            x, y = p.pos[0], p.pos[1]
            best = 0
            for r in city.roofs:
                x0, y0, x1, y1 = r.rect
                if x0 - 1e-6 <= x <= x1 + 1e-6 and y0 - 1e-6 <= y <= y1 + 1e-6:
                    best = r.building
                    break
            out[i] = best
        return out

    def _refit(self, m: mujoco.MjModel) -> None:
        """Recompute the world-body BVH boxes (world frame: centre, half size) bottom-up."""
        g = self.geoms
        rot = _quat_mats(np.asarray(m.geom_quat[g]))
        aabb = np.asarray(m.geom_aabb[g])
        centre = np.asarray(m.geom_pos[g]) + np.einsum("nij,nj->ni", rot, aabb[:, :3])
        half = np.einsum("nij,nj->ni", np.abs(rot), aabb[:, 3:])
        m.bvh_aabb[self.bvh.leaf_node] = np.concatenate([centre, half], axis=1)
        box = m.bvh_aabb
        for nodes, c1, c2 in self.bvh.levels:
            a, b = box[c1], box[c2]
            lo = np.minimum(a[:, :3] - a[:, 3:], b[:, :3] - b[:, 3:])
            hi = np.maximum(a[:, :3] + a[:, 3:], b[:, :3] + b[:, 3:])
            box[nodes] = np.concatenate([(lo + hi) / 2, (hi - lo) / 2], axis=1)

    def upload(self, upload_mesh) -> None:
        """Send the meshes ``apply`` changed to a GL context: ``upload_mesh(mesh_id)``."""
        self.flush_meshes()
        self.meshes.upload(upload_mesh)

    @property
    def dirty(self) -> bool:
        """Meshes to write or upload before the next frame."""
        return self._pending is not None or bool(self.meshes.dirty)


def roof_triangles(r) -> tuple[np.ndarray, np.ndarray]:
    """The solid above a sloped roof's eaves as triangles (outward winding) and uv (metres).

    Top faces follow ``Roof.surface`` exactly (planar faces meeting at ridges and hips); walls
    close the solid where the surface rises above the eaves along an edge (shed high walls,
    gable ends).
    """
    x0, y0, x1, y1 = r.rect
    w, d = x1 - x0, y1 - y0
    xc, yc = (x0 + x1) / 2, (y0 + y1) / 2
    # footprint corners 0-3 (counter-clockwise), edge midpoints 4-7, ridge points 8-9
    if r.kind == "gable" and r.axis == 0:
        ridge = [(x0, yc), (x1, yc)]
    elif r.kind == "gable":
        ridge = [(xc, y0), (xc, y1)]
    elif r.kind == "hip" and w >= d:
        ridge = [(x0 + d / 2, yc), (x1 - d / 2, yc)]
    elif r.kind == "hip":
        ridge = [(xc, y0 + w / 2), (xc, y1 - w / 2)]
    else:
        ridge = [(xc, yc), (xc, yc)]
    xy = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1),
                   (xc, y0), (x1, yc), (xc, y1), (x0, yc), *ridge])  # fmt: skip
    z, _ = r.surface(xy[:, 0], xy[:, 1])
    top = np.c_[xy, z]
    eave = np.c_[xy, np.full(len(xy), r.z)]
    polys = {  # top faces as corner-index polygons
        "shed": [(0, 1, 2, 3)],
        "gable0": [(0, 1, 9, 8), (8, 9, 2, 3)],
        "gable1": [(0, 8, 9, 3), (8, 1, 2, 9)],
        "hip_x": [(0, 1, 9, 8), (2, 3, 8, 9), (3, 0, 8), (1, 2, 9)],
        "hip_y": [(0, 1, 8), (2, 3, 9), (3, 0, 8, 9), (1, 2, 9, 8)],
    }[r.kind if r.kind == "shed" else
      f"gable{r.axis}" if r.kind == "gable" else ("hip_x" if w >= d else "hip_y")]  # fmt: skip
    tris, kinds = [], []  # kind: -1 top face, k wall of edge k
    for poly in polys:
        tris += [top[[poly[0], poly[k], poly[k + 1]]] for k in range(1, len(poly) - 1)]
        kinds += [-1] * (len(poly) - 2)
    for k in range(4):  # walls: eave segment below the surface profile of each edge
        a, b, mid = k, (k + 1) % 4, 4 + k
        ring = [eave[a], eave[b], top[b], top[mid], top[a]]
        tris += [np.array([ring[0], ring[j], ring[j + 1]]) for j in range(1, 4)]
        kinds += [k] * 3
    t = np.array(tris)
    kinds = np.array(kinds)
    n = np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0])
    keep = np.linalg.norm(n, axis=1) > 1e-9
    corners = xy[:4]
    edge = np.roll(corners, -1, axis=0) - corners
    out = np.c_[edge[:, 1], -edge[:, 0], np.zeros(4)]  # outward normals of the CCW edges
    want = np.where(kinds[:, None] < 0, [0.0, 0.0, 1.0], out[np.maximum(kinds, 0)])
    flip = np.einsum("ij,ij->i", n, want) < 0
    t[flip] = t[flip][:, [0, 2, 1]]
    t, kinds = t[keep], kinds[keep]
    along = edge / np.linalg.norm(edge, axis=1, keepdims=True)
    wall_u = np.einsum("tcj,tj->tc", t[..., :2], along[np.maximum(kinds, 0)])
    uv = np.where(kinds[:, None, None] < 0, t[..., :2], np.stack([wall_u, t[..., 2]], axis=-1))
    if len(t) > ROOF_TRIS:
        raise RuntimeError(f"roof {r.id} needs {len(t)} triangles, room for {ROOF_TRIS}")
    return t, uv
