"""A PyBullet world built from a compiled MuJoCo model: one scene description, two engines.

``BulletWorld`` mirrors the geoms of the ``MjModel`` a task compiled in two PyBullet clients:

* the **physics** client (the env's) gets the geoms MuJoCo would let touch the robot: static
  primitives (boxes, cylinders, spheres, capsules) merged into compound bodies of up to 16
  children (PyBullet's limit; a step costs ~0.4 us per separate static body, which matters
  for a city block of hundreds of primitives), planes, meshes and ellipsoids as convex hulls
  (like MuJoCo), height fields as solids (the convex hull when the elevation has no valleys,
  which is exact for shed, gable and hip roofs, else a closed triangle mesh), and colliding
  geoms on mocap bodies as bodies moved to MuJoCo's pose every control step;
* a **render** client, created on the first image, gets every visible geom as a visual-only
  body for TinyRenderer: PyBullet primitives for MuJoCo primitives, triangles for meshes and
  height fields (``geometry.py``); it never steps, so visuals cost the physics nothing.
  Geoms on moving bodies follow MuJoCo's kinematics (``geom_xpos/xmat``), which the env
  keeps in sync with the physics client.

Appearance edits the MuJoCo randomization makes in place (geom/material colours, material
switches, geom groups that hide shapes, resized or re-shaped geoms, rewritten meshes and
height fields) are mirrored before the first image of an episode. Fixed textures are
uploaded once per texture; textures regenerated per episode (``rt_*`` slots) are shown as
their mean colour.

Memory: PyBullet does not free collision shapes of removed bodies nor any explicit visual
mesh, and a task that rewrites its static geometry per episode (RooftopLanding's primitive
pool) therefore gets a fresh world per episode (``static_changed`` -> rebuild), built from
shapes PyBullet does recycle. Measured with a new city block every episode: ~0.06 MB per
episode with state observations, ~1.6 MB with images (re-meshed sloped roofs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable

import mujoco
import numpy as np

from .geometry import (
    INFINITE_PLANE,
    geom_triangles,
    hfield_convex_hull,
    hfield_mesh,
    mat_to_quat_xyzw,
)

__all__ = ["BulletWorld", "VISIBLE_GROUPS", "point_geom_distance"]

VISIBLE_GROUPS = (0, 1, 2)  # MuJoCo's default mjvOption.geomgroup
_G = mujoco.mjtGeom
_ROLE_RGB = int(mujoco.mjtTextureRole.mjTEXROLE_RGB)
_COMPOUND_TYPES = (_G.mjGEOM_BOX, _G.mjGEOM_SPHERE, _G.mjGEOM_CAPSULE, _G.mjGEOM_CYLINDER)
_RECYCLE_AFTER = 500  # re-created visual bodies before the render world is rebuilt
_COMPOUND_CHUNK = 16  # PyBullet keeps at most 16 children per createCollisionShapeArray


def _write_tga(path: str, rgb: np.ndarray) -> None:
    h, w = rgb.shape[:2]
    hdr = struct.pack("<BBBHHBHHHHBB", 0, 0, 2, 0, 0, 0, 0, 0, w, h, 24, 0x20)
    with open(path, "wb") as f:
        f.write(hdr + np.ascontiguousarray(rgb[..., 2::-1]).tobytes())


def point_geom_distance(
    model: mujoco.MjModel, data: mujoco.MjData, geoms: np.ndarray, point: np.ndarray
) -> np.ndarray:
    """Distance (m, 0 inside) from a world point to each primitive geom (box, sphere,
    capsule, cylinder; others by their bounding sphere), from MuJoCo's geom poses."""
    geoms = np.asarray(geoms, dtype=np.int64)
    pos, mat = _geom_frames(model, data, geoms)
    local = np.einsum("nji,nj->ni", mat, point[None, :] - pos)
    size = model.geom_size[geoms]
    types = model.geom_type[geoms]
    out = np.linalg.norm(local, axis=1) - model.geom_rbound[geoms]
    box = types == _G.mjGEOM_BOX
    if box.any():
        q = np.abs(local[box]) - size[box]
        out[box] = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    sph = types == _G.mjGEOM_SPHERE
    out[sph] = np.linalg.norm(local[sph], axis=1) - size[sph, 0]
    cap = types == _G.mjGEOM_CAPSULE
    if cap.any():
        lc = local[cap].copy()
        lc[:, 2] -= np.clip(lc[:, 2], -size[cap, 1], size[cap, 1])
        out[cap] = np.linalg.norm(lc, axis=1) - size[cap, 0]
    cyl = types == _G.mjGEOM_CYLINDER
    if cyl.any():
        lc = local[cyl]
        dr = np.hypot(lc[:, 0], lc[:, 1]) - size[cyl, 0]
        dz = np.abs(lc[:, 2]) - size[cyl, 1]
        out[cyl] = np.hypot(np.maximum(dr, 0.0), np.maximum(dz, 0.0))
    return np.maximum(out, 0.0)


class BulletWorld:
    """Mirror of a compiled model's geoms in PyBullet (see the module docstring).

    ``build(model, robot_geoms)`` after every ``resetSimulation`` of the physics client;
    ``robot_geoms`` are the geoms whose collision the engine models itself (the quad's box).
    """

    def __init__(self, client: int):
        import pybullet as pb

        self.pb, self.client = pb, client
        self.model: mujoco.MjModel | None = None
        self.robot_geoms: set[int] = set()
        self.render_client: int | None = None
        self._tmp: str | None = None
        self._render_built = False
        self.appearance_dirty = True
        self.visible_groups: tuple[int, ...] = VISIBLE_GROUPS
        self._phys_geom: dict[int, int] = {}  # physics body uid -> geom (single-geom bodies)
        self._compound: dict[int, np.ndarray] = {}  # physics body uid -> its child geoms
        self._collision_moving: list[tuple[int, int]] = []  # (geom, uid)
        self._static_sig: np.ndarray | None = None

    # ------------------------------------------------------------------ physics
    def build(
        self, model: mujoco.MjModel, data: mujoco.MjData, robot_geoms: Iterable[int] = ()
    ) -> None:
        """Create the colliding geoms in the physics client; drop the old render world."""
        self.model = m = model
        self.robot_geoms = {int(g) for g in robot_geoms}
        self._moving = _moving_geoms(m)
        self._phys_geom, self._compound, self._collision_moving = {}, {}, []
        pose = _PoseSource(m, data)
        for g in self._colliding():
            if self._moving[g]:
                self._single(g, pose)
        self._build_static(data)
        self._drop_render()
        self.appearance_dirty = True

    def _colliding(self) -> list[int]:
        """Geoms MuJoCo would let touch a robot geom (any geom with collision bits if none)."""
        m = self.model
        ct, ca = np.asarray(m.geom_contype), np.asarray(m.geom_conaffinity)
        robot = list(self.robot_geoms)
        out = []
        for g in range(m.ngeom):
            if g in self.robot_geoms:
                continue
            if robot:
                if not any((ct[g] & ca[r]) or (ct[r] & ca[g]) for r in robot):
                    continue
            elif ct[g] == 0 and ca[g] == 0:
                continue
            out.append(g)
        return out

    def _static_signature(self) -> np.ndarray:
        m = self.model
        st = np.flatnonzero(~self._moving)
        parts = [
            m.geom_type[st], m.geom_size[st].ravel(), m.geom_pos[st].ravel(),
            m.geom_quat[st].ravel(), m.geom_contype[st], m.geom_conaffinity[st],
            m.geom_dataid[st], m.geom_friction[st, 0], m.hfield_size.ravel(), m.hfield_data,
        ]  # fmt: skip
        return np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in parts])

    def static_changed(self) -> bool:
        """Did the model's static geometry change since ``build`` (tasks that edit a
        primitive pool in place per episode)? Then the world must be rebuilt: PyBullet does
        not free the collision shapes of removed bodies, so patching it in place would grow
        memory by megabytes per episode, while ``resetSimulation`` reuses it."""
        return not np.array_equal(self._static_signature(), self._static_sig)

    def _build_static(self, data: mujoco.MjData) -> None:
        m = self.model
        pose = _PoseSource(m, data)
        groups: dict[float, list[int]] = {}
        for g in self._colliding():
            if self._moving[g]:
                continue
            if int(m.geom_type[g]) in _COMPOUND_TYPES:
                groups.setdefault(float(m.geom_friction[g, 0]), []).append(g)
            else:
                self._single(g, pose)
        for friction, gs in groups.items():
            for k in range(0, len(gs), _COMPOUND_CHUNK):
                self._compound_body(gs[k : k + _COMPOUND_CHUNK], friction, pose)
        self._static_sig = self._static_signature()

    def _shape(self, g: int) -> int:
        pb, c, m = self.pb, self.client, self.model
        t = int(m.geom_type[g])
        s = np.asarray(m.geom_size[g], dtype=float)
        if t == _G.mjGEOM_PLANE:
            return pb.createCollisionShape(pb.GEOM_PLANE, planeNormal=[0, 0, 1], physicsClientId=c)
        if t == _G.mjGEOM_BOX:
            return pb.createCollisionShape(pb.GEOM_BOX, halfExtents=s.tolist(), physicsClientId=c)
        if t == _G.mjGEOM_SPHERE:
            return pb.createCollisionShape(pb.GEOM_SPHERE, radius=float(s[0]), physicsClientId=c)
        if t in (_G.mjGEOM_CAPSULE, _G.mjGEOM_CYLINDER):
            kind = pb.GEOM_CAPSULE if t == _G.mjGEOM_CAPSULE else pb.GEOM_CYLINDER
            return pb.createCollisionShape(
                kind, radius=float(s[0]), height=2 * float(s[1]), physicsClientId=c
            )
        if t == _G.mjGEOM_HFIELD:  # a solid: MuJoCo collides with the prisms under it
            h = int(m.geom_dataid[g])
            hull = hfield_convex_hull(m, h)
            if hull is not None:  # shed, gable and hip roofs: the hull is exact, and small
                return pb.createCollisionShape(
                    pb.GEOM_MESH, vertices=hull[0].tolist(), physicsClientId=c
                )
            verts, faces = hfield_mesh(m, h)
            # terrain: a closed static triangle mesh (PyBullet never frees it: ~0.7 MB each)
            return pb.createCollisionShape(
                pb.GEOM_MESH, vertices=verts.tolist(), indices=faces.ravel().tolist(),
                flags=pb.GEOM_FORCE_CONCAVE_TRIMESH, physicsClientId=c,
            )  # fmt: skip
        tri = geom_triangles(m, g)  # mesh, ellipsoid: convex hull, like MuJoCo
        if tri is None:
            return -1
        return pb.createCollisionShape(pb.GEOM_MESH, vertices=tri.verts.tolist(), physicsClientId=c)

    def _single(self, g: int, pose: _PoseSource) -> None:
        col = self._shape(g)
        if col < 0:
            return
        pos, quat = pose(g)
        uid = self.pb.createMultiBody(
            0.0, col, -1, pos, quat, useMaximalCoordinates=True, physicsClientId=self.client
        )
        self._dynamics(uid, float(self.model.geom_friction[g, 0]))
        self._phys_geom[uid] = g
        if self._moving[g]:
            self._collision_moving.append((g, uid))

    def _compound_body(self, gs: list[int], friction: float, pose: _PoseSource) -> None:
        pb, m = self.pb, self.model
        kinds, radii, halves, lengths = [], [], [], []
        for g in gs:
            t, s = int(m.geom_type[g]), np.asarray(m.geom_size[g], dtype=float)
            if t == _G.mjGEOM_BOX:
                kinds.append(pb.GEOM_BOX)
                radii.append(0.0)
                halves.append(s.tolist())
                lengths.append(0.0)
            else:
                kinds.append(
                    {
                        _G.mjGEOM_SPHERE: pb.GEOM_SPHERE,
                        _G.mjGEOM_CAPSULE: pb.GEOM_CAPSULE,
                        _G.mjGEOM_CYLINDER: pb.GEOM_CYLINDER,
                    }[t]  # fmt: skip
                )
                radii.append(float(s[0]))
                halves.append([0.0, 0.0, 0.0])
                lengths.append(0.0 if t == _G.mjGEOM_SPHERE else 2.0 * float(s[1]))
        poses = [pose(g) for g in gs]
        col = pb.createCollisionShapeArray(
            kinds, radii=radii, halfExtents=halves, lengths=lengths,
            collisionFramePositions=[p for p, _ in poses],
            collisionFrameOrientations=[q for _, q in poses],
            physicsClientId=self.client,
        )  # fmt: skip
        uid = pb.createMultiBody(
            0.0, col, -1, [0, 0, 0], [0, 0, 0, 1], useMaximalCoordinates=True,
            physicsClientId=self.client,
        )  # fmt: skip
        self._dynamics(uid, friction)
        self._compound[uid] = np.asarray(gs, dtype=np.int64)

    def _dynamics(self, uid: int, friction: float) -> None:
        self.pb.changeDynamics(
            uid, -1, lateralFriction=friction, restitution=0.0, physicsClientId=self.client
        )

    def sync_collision(self, data: mujoco.MjData) -> None:
        """Move colliding geoms of moving bodies (mocap obstacles) to MuJoCo's poses."""
        for g, uid in self._collision_moving:
            self.pb.resetBasePositionAndOrientation(
                uid, data.geom_xpos[g].tolist(), mat_to_quat_xyzw(data.geom_xmat[g]),
                physicsClientId=self.client,
            )  # fmt: skip

    @property
    def has_moving_collision(self) -> bool:
        return bool(self._collision_moving)

    def contact_geom(self, data: mujoco.MjData, point: tuple) -> int:
        """MuJoCo geom id of one PyBullet contact point (a ``getContactPoints`` row whose body
        B is scene), -1 if unknown; a compound child is the geom nearest the contact point."""
        uid = int(point[2])
        g = self._phys_geom.get(uid)
        if g is not None:
            return g
        kids = self._compound.get(uid)
        if kids is None:
            return -1
        dist = point_geom_distance(self.model, data, kids, np.asarray(point[6], dtype=float))
        return int(kids[int(np.argmin(dist))])

    def contact_geoms(self, data: mujoco.MjData, points: Iterable[tuple]) -> list[int]:
        """Distinct MuJoCo geom ids touched at PyBullet contact points (see ``contact_geom``)."""
        out: list[int] = []
        for p in points:
            g = self.contact_geom(data, p)
            if g >= 0 and g not in out:
                out.append(g)
        return out

    # ------------------------------------------------------------------ render world
    def _drop_render(self) -> None:
        if self.render_client is not None:
            self.pb.resetSimulation(physicsClientId=self.render_client)
        self._render_built = False

    def _build_render(self) -> None:
        pb, m = self.pb, self.model
        if self.render_client is None:
            self.render_client = pb.connect(pb.DIRECT)
            self._tmp = tempfile.mkdtemp(prefix="simenvs_pb_tex_")
        self._tex_uid: dict[int, int] = {}
        self._tex_dirty: set[int] = set(range(m.ntex))
        self._mean_rgb: dict[int, np.ndarray] = {}
        names = [m.texture(t).name or "" for t in range(m.ntex)]
        self._rt_textures = {t for t, n in enumerate(names) if n.startswith("rt_")}
        self.geom_uid = np.full(m.ngeom, -1, dtype=np.int64)
        self.uid_to_geom = np.full(0, -1, dtype=np.int64)
        self._vis_sig: dict[int, tuple] = {}
        self._vis_state: dict[int, tuple] = {}
        self._visible_moving: list[int] = []
        self._mesh_cache: dict[tuple, int] = {}
        self._created = -m.ngeom  # visual bodies made since the render world was (re)built
        self._render_built = True
        self.appearance_dirty = True

    def _create_visual(self, g: int, pose: _PoseSource) -> None:
        pb, rc = self.pb, self.render_client
        self._created += 1
        self._vis_sig[g] = self._signature(g)
        self._vis_state[g] = ()
        vis = self._visual_shape(g)
        if vis < 0:
            return
        pos, quat = pose(g)
        uid = pb.createMultiBody(
            0.0, -1, vis, pos, quat, useMaximalCoordinates=True, physicsClientId=rc
        )
        self.geom_uid[g] = uid
        if uid >= len(self.uid_to_geom):
            grown = np.full(uid + 64, -1, dtype=np.int64)
            grown[: len(self.uid_to_geom)] = self.uid_to_geom
            self.uid_to_geom = grown
        self.uid_to_geom[uid] = g

    def _visual_shape(self, g: int) -> int:
        """PyBullet primitives where MuJoCo has one (PyBullet frees those with the world;
        explicit meshes are never freed, so only meshes, height fields and ellipsoids are
        triangulated, and re-created only when their content changes)."""
        pb, rc, m = self.pb, self.render_client, self.model
        t = int(m.geom_type[g])
        s = np.asarray(m.geom_size[g], dtype=float)
        if t == _G.mjGEOM_BOX:
            return pb.createVisualShape(pb.GEOM_BOX, halfExtents=s.tolist(), physicsClientId=rc)
        if t == _G.mjGEOM_PLANE:  # TinyRenderer draws no planes: a thin box, top at z = 0
            hx = s[0] if s[0] > 0 else INFINITE_PLANE
            hy = s[1] if s[1] > 0 else INFINITE_PLANE
            return pb.createVisualShape(
                pb.GEOM_BOX, halfExtents=[hx, hy, 0.005], visualFramePosition=[0, 0, -0.005],
                physicsClientId=rc,
            )  # fmt: skip
        if t == _G.mjGEOM_SPHERE:
            return pb.createVisualShape(pb.GEOM_SPHERE, radius=float(s[0]), physicsClientId=rc)
        if t in (_G.mjGEOM_CAPSULE, _G.mjGEOM_CYLINDER):
            kind = pb.GEOM_CAPSULE if t == _G.mjGEOM_CAPSULE else pb.GEOM_CYLINDER
            return pb.createVisualShape(
                kind, radius=float(s[0]), length=2.0 * float(s[1]), physicsClientId=rc
            )
        key = self._signature(g)  # same triangles: share the (never freed) visual shape
        if key in self._mesh_cache:
            return self._mesh_cache[key]
        tri = geom_triangles(m, g)
        if tri is None or len(tri.idx) == 0:
            return -1
        vis = pb.createVisualShape(
            pb.GEOM_MESH, vertices=tri.verts.tolist(), indices=tri.idx.tolist(),
            normals=tri.normals.tolist(), uvs=tri.uvs.tolist(), physicsClientId=rc,
        )  # fmt: skip
        self._mesh_cache[key] = vis
        return vis

    def _remove_visual(self, g: int) -> None:
        uid = int(self.geom_uid[g])
        if uid >= 0:
            self.pb.removeBody(uid, physicsClientId=self.render_client)
            self.uid_to_geom[uid] = -1
        self.geom_uid[g] = -1
        self._vis_sig.pop(g, None)
        self._vis_state.pop(g, None)

    def _signature(self, g: int) -> tuple:
        m = self.model
        t, did = int(m.geom_type[g]), int(m.geom_dataid[g])
        extra: tuple = ()
        if t == _G.mjGEOM_HFIELD and did >= 0:  # tasks rewrite elevations in place
            n = int(m.hfield_nrow[did]) * int(m.hfield_ncol[did])
            adr = int(m.hfield_adr[did])
            extra = (tuple(m.hfield_size[did]), hash(m.hfield_data[adr : adr + n].tobytes()))
        elif t == _G.mjGEOM_MESH and did >= 0:  # ... and mesh vertices, faces, uvs
            va, vn = int(m.mesh_vertadr[did]), int(m.mesh_vertnum[did])
            fa, fn = int(m.mesh_faceadr[did]), int(m.mesh_facenum[did])
            ta, tn = int(m.mesh_texcoordadr[did]), int(m.mesh_texcoordnum[did])
            extra = (fn, hash(m.mesh_vert[va : va + vn].tobytes()),
                     hash(m.mesh_face[fa : fa + fn].tobytes()),
                     hash(m.mesh_texcoord[ta : ta + tn].tobytes()) if tn > 0 else 0)  # fmt: skip
        return (t, tuple(np.round(m.geom_size[g], 9)), did, extra)  # material: see _vis_state

    def mark_texture(self, texid: int) -> None:
        """The pixels of MuJoCo texture ``texid`` changed (TextureBank upload hook)."""
        if self._render_built:
            self._tex_dirty.add(int(texid))
            self._mean_rgb.pop(int(texid), None)
        self.appearance_dirty = True

    def sync_visuals(self, data: mujoco.MjData) -> None:
        """Mirror poses (every call) and, when ``appearance_dirty`` (new episode, textures),
        visibility, colours, materials, shape edits and static poses into the render client.

        Only visible geoms have a body: TinyRenderer transforms and clips every body each
        frame, transparent or not, so hidden ones (collision primitives in group 3, the unused
        gate shape, parked pool entries) are removed rather than made transparent.
        """
        self._data = data
        if self._render_built and self.appearance_dirty and self._created > _RECYCLE_AFTER:
            self._drop_render()  # resetSimulation is the one way PyBullet frees shapes
        if not self._render_built:
            self._build_render()
        pb, rc = self.pb, self.render_client
        if not self.appearance_dirty:
            for g in self._visible_moving:
                self._pose(g, data)
            return
        m = self.model
        groups = np.asarray(m.geom_group)
        pose = _PoseSource(m, data)
        self._visible_moving = []
        for g in range(m.ngeom):
            mat = int(m.geom_matid[g])
            rgba = self._rgba(g, mat) if int(groups[g]) in self.visible_groups else (0.0,) * 4
            if rgba[3] <= 0.0:
                if g in self._vis_sig:
                    self._remove_visual(g)
                continue
            if g not in self._vis_sig or self._signature(g) != self._vis_sig[g]:
                self._remove_visual(g)
                self._create_visual(g, pose)
            uid = int(self.geom_uid[g])
            if uid < 0:
                continue
            p, q = pose(g)
            pb.resetBasePositionAndOrientation(uid, p, q, physicsClientId=rc)
            if self._moving[g]:
                self._visible_moving.append(g)
            state = (rgba, self._texture_uid(mat))
            if state != self._vis_state[g]:
                pb.changeVisualShape(
                    uid, -1, rgbaColor=list(rgba), textureUniqueId=state[1], physicsClientId=rc
                )
                self._vis_state[g] = state
        self.appearance_dirty = False

    def _pose(self, g: int, data: mujoco.MjData) -> None:
        self.pb.resetBasePositionAndOrientation(
            int(self.geom_uid[g]), data.geom_xpos[g].tolist(), mat_to_quat_xyzw(data.geom_xmat[g]),
            physicsClientId=self.render_client,
        )  # fmt: skip

    def _rgba(self, g: int, mat: int) -> tuple[float, ...]:
        m = self.model
        rgba = np.asarray(m.geom_rgba[g], dtype=float)
        if mat >= 0:
            mr = np.asarray(m.mat_rgba[mat], dtype=float)
            col = mr[:3].copy()
            tex = int(m.mat_texid[mat, _ROLE_RGB])
            if tex in self._rt_textures:  # per-episode texture: its mean colour
                col = col * self._mean_colour(tex)
            col = np.clip(col * (1.0 + float(m.mat_emission[mat])), 0.0, 1.0)
            rgba = np.array([*col, rgba[3] * mr[3]])
        return tuple(np.round(rgba, 4).tolist())

    def _tex_pixels(self, tex: int) -> np.ndarray:
        m = self.model
        h, w, ch = int(m.tex_height[tex]), int(m.tex_width[tex]), int(m.tex_nchannel[tex])
        adr = int(m.tex_adr[tex])
        return np.asarray(m.tex_data[adr : adr + h * w * ch]).reshape(h, w, ch)

    def _mean_colour(self, tex: int) -> np.ndarray:
        if tex not in self._mean_rgb:
            px = self._tex_pixels(tex)
            self._mean_rgb[tex] = px.reshape(-1, px.shape[2])[:, :3].mean(0) / 255.0
        return self._mean_rgb[tex]

    def _texture_uid(self, mat: int) -> int:
        if mat < 0:
            return -1
        m = self.model
        tex = int(m.mat_texid[mat, _ROLE_RGB])
        if tex < 0 or tex in self._rt_textures or int(m.tex_type[tex]) != 0:
            return -1
        if tex in self._tex_uid and tex not in self._tex_dirty:
            return self._tex_uid[tex]
        px = self._tex_pixels(tex)
        if px.shape[2] == 1:
            px = np.repeat(px, 3, axis=2)
        path = os.path.join(self._tmp, f"tex{tex}_{len(self._tex_uid)}.tga")
        _write_tga(path, px[..., :3])
        uid = self.pb.loadTexture(path, physicsClientId=self.render_client)
        os.remove(path)
        self._tex_uid[tex] = uid
        self._tex_dirty.discard(tex)
        return uid

    def close(self) -> None:
        if self.render_client is not None:
            with contextlib.suppress(Exception):  # already gone
                self.pb.disconnect(physicsClientId=self.render_client)
            self.render_client = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _geom_frames(
    model: mujoco.MjModel, data: mujoco.MjData, geoms: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n, 3) positions and (n, 3, 3) rotations of geoms, world-body ones from the model."""
    pos = data.geom_xpos[geoms].copy()
    mat = data.geom_xmat[geoms].reshape(-1, 3, 3).copy()
    world = np.asarray(model.geom_bodyid[geoms]) == 0
    if world.any():
        gw = geoms[world]
        pos[world] = model.geom_pos[gw]
        q = np.asarray(model.geom_quat[gw], dtype=np.float64)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        w, x, y, z = q.T
        mat[world] = np.stack(
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
             2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
             2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
            axis=1,
        ).reshape(-1, 3, 3)  # fmt: skip
    return pos, mat


class _PoseSource:
    """Geom poses for PyBullet: world-body geoms from the model (tasks edit them in place and
    MuJoCo may not re-pose static geoms when sleeping is on), the others from ``data``."""

    def __init__(self, model: mujoco.MjModel, data: mujoco.MjData):
        self.m, self.d = model, data

    def __call__(self, g: int) -> tuple[list[float], list[float]]:
        m = self.m
        if int(m.geom_bodyid[g]) == 0:
            w, x, y, z = (float(v) for v in m.geom_quat[g])
            n = (w * w + x * x + y * y + z * z) ** 0.5
            return m.geom_pos[g].tolist(), [x / n, y / n, z / n, w / n]
        return self.d.geom_xpos[g].tolist(), mat_to_quat_xyzw(self.d.geom_xmat[g])


def _moving_geoms(m: mujoco.MjModel) -> np.ndarray:
    """Geoms whose body moves: under a joint or a mocap body anywhere up the tree."""
    moving_body = np.zeros(m.nbody, dtype=bool)
    for b in range(1, m.nbody):
        moving_body[b] = (
            moving_body[int(m.body_parentid[b])] or m.body_jntnum[b] > 0 or m.body_mocapid[b] >= 0
        )
    return moving_body[np.asarray(m.geom_bodyid)]
