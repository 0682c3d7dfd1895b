"""Offscreen rendering that survives model swaps.

``mujoco.Renderer`` makes a new GL context per instance (50–60 ms). Tasks that rebuild
their scene per episode only need a new ``MjrContext`` on the existing GL context (~5 ms),
and observation images and ``render()`` frames of different sizes can share one context, so
this module keeps one GL context per env and renders any viewport up to its buffer size.

On llvmpipe a small frame costs mostly per geom drawn (tens of microseconds each, visible or
not), so ``SceneRenderer.render`` leaves out geoms whose bounding sphere lies entirely outside
a fixed camera's view frustum. That is exact (such a geom cannot touch a pixel): images are
the same bit for bit, and an FPV camera that sees a few gates skips the rest of the scene.
The test itself costs about as much as drawing a few small geoms, so it runs every frame only
while it leaves out enough of them (``_CULL_WORTH``) and otherwise 1 frame in 8.
"""

from __future__ import annotations

import contextlib
import math
import os

os.environ.setdefault("MUJOCO_GL", "egl")
# llvmpipe (Mesa's CPU rasterizer) rasterizes in the calling thread instead of handing each
# frame to worker threads: 4-11 % less CPU per 64x64/84x84 frame and less wall time even at
# 256x256 on the shared 2-core machines (docs/MEASURED.md); one env per core is the scaling
# model. Only read when the first GL context is made, and a user's setting wins.
os.environ.setdefault("LP_NUM_THREADS", "0")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["SceneRenderer", "prepare_fast_rendering"]

_CURRENT = None  # the GL context made current last (one thread renders per process)
_CULL_MAX_MESH_VERTS = 4096  # mesh vertices (all meshes) up to which mesh geoms are culled
# The frustum test costs ~100 us per frame between GL calls (a few dozen small numpy calls,
# each several microseconds with caches cold from rasterizing) and saves ~5-20 us per geom
# left out: when a test leaves out fewer than _CULL_WORTH geoms, the next _CULL_RETRY frames
# draw everything (images are the same either way). An FPV camera that sees a few of many
# gates keeps culling every frame; an arm camera that sees nearly everything tests 1 in 8.
_CULL_WORTH = 8
_CULL_RETRY = 7


def _gl_context(width: int, height: int):
    """MuJoCo's context for the configured backend; EGL when mujoco was imported before
    simenvs without MUJOCO_GL (its module-level choice is then the GLFW window default)."""
    if os.environ.get("MUJOCO_GL", "").strip().lower() in ("", "egl"):
        from mujoco.egl import GLContext
    else:
        from mujoco.rendering.classic.gl_context import GLContext
    return GLContext(width, height)


def prepare_fast_rendering(model: mujoco.MjModel, width: int, height: int) -> None:
    """Shadows off, no multisampling, an offscreen buffer big enough (DESIGN.md: 50–100×)."""
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0
    q = model.vis.quality  # coarse tessellation of round shapes: llvmpipe pays per triangle
    q.numslices, q.numstacks, q.numquads = min(q.numslices, 12), min(q.numstacks, 6), 1
    model.light_castshadow[:] = 0
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), int(width))
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), int(height))


class SceneRenderer:
    """One GL context, any number of models over its lifetime, any viewport size."""

    def __init__(
        self, model: mujoco.MjModel, max_width: int, max_height: int, max_geom: int = 2000
    ):
        self.max_width, self.max_height, self.max_geom = int(max_width), int(max_height), max_geom
        self._gl = _gl_context(self.max_width, self.max_height)
        self._make_current()
        self._ctx: mujoco.MjrContext | None = None
        self.option = mujoco.MjvOption()
        self._camera = mujoco.MjvCamera()
        self.model: mujoco.MjModel | None = None
        self.set_model(model)

    def set_model(self, model: mujoco.MjModel) -> None:
        """Bind a (new) model: fresh MjrContext and MjvScene on the same GL context."""
        prepare_fast_rendering(model, self.max_width, self.max_height)
        self._make_current()
        if self._ctx is not None:
            self._ctx.free()
        self._ctx = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._ctx.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        self._fb = (0, 0)  # offscreen buffer size: grown to the largest viewport rendered
        self.scene = mujoco.MjvScene(model, maxgeom=self.max_geom)
        if not np.any(model.tex_type == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX)):
            # no skybox to draw (or haze to blend into it): skipping those passes leaves every
            # pixel as it is and saves ~10 % of a small frame on llvmpipe
            self.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = False
            self.scene.flags[mujoco.mjtRndFlag.mjRND_HAZE] = False
        self.model = model
        # frustum culling: primitives (sphere..box) and meshes; planes, height fields and the
        # rest are always drawn. Bounding radii are computed at render time from the current
        # sizes and vertices, since tasks resize geoms and edit meshes in place.
        t = model.geom_type
        prim = (t >= int(mujoco.mjtGeom.mjGEOM_SPHERE)) & (t <= int(mujoco.mjtGeom.mjGEOM_BOX))
        mesh = t == int(mujoco.mjtGeom.mjGEOM_MESH)
        if model.nmeshvert > _CULL_MAX_MESH_VERTS or np.any(model.mesh_vertnum <= 0):
            mesh[:] = False  # big (procedural) meshes: not worth a per-frame bound
        idx = np.flatnonzero(prim | mesh)
        self._cull_idx = idx if idx.size else None
        self._cull_mesh = np.flatnonzero(mesh)
        self._is_mesh = mesh
        self._pad = np.full(3, 1.0 + 1e-5)
        names = ("cam_projection", "cam_sensorsize", "cam_fovy", "geom_size", "mesh_vert",
                 "mesh_vertadr", "geom_dataid")  # fmt: skip
        self._views = {n: getattr(model, n) for n in names}  # live views: edits show up
        self._views["refl"] = model.mat_reflectance
        self._views["geom_group"] = model.geom_group
        # live view of the drawn groups (making one per frame costs); if ``option`` is replaced
        # later, a stale view only culls less: hidden geoms stay in a group drawn or not
        self._geomgroup = self.option.geomgroup
        self._planes_key: tuple[float, float] | None = None
        self._cam_ids: dict[str, int] = {}
        self._cam_key: int | str | None = None  # camera set up in self._camera
        self._rects: dict[tuple[int, int], mujoco.MjrRect] = {}
        self._dv_data: mujoco.MjData | None = None
        self._mesh_r: np.ndarray | None = None
        self._cull_wait = 0  # frames left before the frustum test runs again

    def _make_current(self) -> None:
        """Switching GL contexts costs; skip it when this one is already current."""
        global _CURRENT
        if _CURRENT is not self._gl:
            self._gl.make_current()
            _CURRENT = self._gl

    def upload_mesh(self, meshid: int) -> None:
        """Re-upload a mesh after editing its vertices in place (procedural scenes)."""
        self._mesh_r = None  # culling bounds follow what GL draws
        self._make_current()
        mujoco.mjr_uploadMesh(self.model, self._ctx, int(meshid))

    def upload_hfield(self, hfieldid: int) -> None:
        self._make_current()
        mujoco.mjr_uploadHField(self.model, self._ctx, int(hfieldid))

    def upload_texture(self, texid: int) -> None:
        self._make_current()
        mujoco.mjr_uploadTexture(self.model, self._ctx, int(texid))

    def _camera_for(self, camera: int | str) -> mujoco.MjvCamera:
        cam = self._camera
        if camera == self._cam_key and camera != -1:  # same fixed camera as the last frame
            return cam
        cid = camera
        if isinstance(camera, str):
            cid = self._cam_ids.get(camera)
            if cid is None:
                cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
                if cid < 0:
                    names = [self.model.camera(i).name for i in range(self.model.ncam)]
                    raise ValueError(f"unknown camera {camera!r}; cameras: {names} (or -1: free)")
                self._cam_ids[camera] = cid
        self._cam_id = int(cid)
        if cid == -1:
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            mujoco.mjv_defaultFreeCamera(self.model, cam)
        else:
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = int(cid)
        self._cam_key = camera
        return cam

    def render(
        self,
        data: mujoco.MjData,
        camera: int | str,
        width: int,
        height: int,
        mode: str = "rgb",
    ) -> np.ndarray:
        """``mode``: "rgb" -> (H, W, 3) uint8; "depth" -> (H, W) float32 metres;
        "segmentation" -> (H, W) int32 geom id (-1 background)."""
        if width > self.max_width or height > self.max_height:
            raise ValueError(
                f"render size {width}x{height} exceeds the buffer "
                f"{self.max_width}x{self.max_height}"
            )
        self._make_current()
        if width > self._fb[0] or height > self._fb[1]:
            self._resize_buffer(max(width, self._fb[0]), max(height, self._fb[1]))
        scene = self.scene
        cam = self._camera_for(camera)
        model = self.model
        culled = None
        if self._cull_wait:
            self._cull_wait -= 1
        else:
            culled = self._outside_frustum(data, self._cam_id, width, height)
            if culled is None or len(culled) < _CULL_WORTH:
                self._cull_wait = _CULL_RETRY  # rarely pays here: test again later
        if culled is not None:  # hide them in a switched-off group while the scene is built
            groups = model.geom_group[culled]
            model.geom_group[culled] = self._off_group
        try:
            mujoco.mjv_updateScene(
                model, data, self.option, None, cam, mujoco.mjtCatBit.mjCAT_ALL, scene
            )
        finally:
            if culled is not None:
                model.geom_group[culled] = groups
        rect = self._rects.get((width, height))
        if rect is None:
            rect = self._rects[width, height] = mujoco.MjrRect(0, 0, int(width), int(height))
        if mode == "rgb":  # the common case: no flags to set and restore
            mujoco.mjr_render(rect, scene, self._ctx)
            rgb = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_readPixels(rgb, None, rect, self._ctx)
            return rgb[::-1].copy()
        flags = scene.flags.copy()
        if mode in ("depth", "segmentation"):
            scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = True
            scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            mujoco.mjr_render(rect, scene, self._ctx)
            if mode == "depth":
                buf = np.empty((height, width), np.float32)
                mujoco.mjr_readPixels(None, buf, rect, self._ctx)
                return np.flipud(self._linear_depth(buf)).copy()
            rgb = np.empty((height, width, 3), np.uint8)
            mujoco.mjr_readPixels(rgb, None, rect, self._ctx)
            rgb = np.flipud(rgb)
            if mode != "segmentation":
                raise ValueError(f"unknown render mode {mode!r}; modes: rgb, depth, segmentation")
            ids = rgb.astype(np.int32)
            segid = ids[..., 0] + ids[..., 1] * 256 + ids[..., 2] * 65536
            lut = np.full(scene.ngeom + 1, -1, np.int32)
            for g in scene.geoms[: scene.ngeom]:
                if g.segid != -1 and g.objtype == mujoco.mjtObj.mjOBJ_GEOM:
                    lut[g.segid + 1] = g.objid
            return lut[np.clip(segid, 0, scene.ngeom)]
        finally:
            np.copyto(scene.flags, flags)

    def _resize_buffer(self, width: int, height: int) -> None:
        """Offscreen buffer exactly as big as the largest viewport rendered so far, rather than
        ``offwidth`` x ``offheight`` (often 256x256): on llvmpipe a 64x64 or 84x84 frame costs
        ~5-8 % less in a buffer of its own size (measured). Pixels are the same bit for bit."""
        mujoco.mjr_resizeOffscreen(int(width), int(height), self._ctx)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._ctx)
        self._fb = (int(width), int(height))

    def _outside_frustum(
        self, data: mujoco.MjData, cid: int, width: int, height: int
    ) -> np.ndarray | None:
        """Ids of geoms whose bounding sphere lies entirely outside the frustum of fixed
        perspective camera ``cid`` (None: nothing to cull, or a case this does not cover:
        the free camera, orthographic cameras, sensor intrinsics, reflective materials, whose
        mirror pass can show geoms outside the frustum).

        Only cullable geoms in drawn groups are tested (most of a scene can sit in hidden
        groups: collision geometry, parked pool entries). This runs every frame between GL
        calls, where each numpy call costs several microseconds, so it is written as few
        calls on small arrays (measured: ~150 us per Grasp frame before, more than culling
        saved)."""
        v = self._views
        if cid < 0 or self._cull_idx is None:
            return None
        size = v["cam_sensorsize"]
        if v["cam_projection"][cid] or size[cid, 0] or size[cid, 1] or v["refl"].any():
            return None
        groups = self._geomgroup
        off = groups.argmin()
        if groups[off]:
            return None  # every group is drawn: nowhere to hide geoms
        self._off_group = int(off)
        idx = self._cull_idx
        idx = idx[groups.take(v["geom_group"][idx], mode="clip") != 0]
        if not idx.size:
            return None
        planes = self._frustum_planes(float(v["cam_fovy"][cid]), width / height)
        xpos, cam_xpos, cam_xmat = self._data_views(data)
        # signed distances of the geom centres to the 6 planes (outward unit normals) less
        # the bounding radius: any positive one puts the whole sphere outside
        rot = cam_xmat[cid].reshape(3, 3) @ planes[:3]
        dist = xpos[idx] @ rot
        dist -= (cam_xpos[cid] @ rot - planes[3]) + self._bound_radii(idx)[:, None]
        out = idx[dist.max(axis=1) > 0.0]
        return out if out.size else None

    def _data_views(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(geom_xpos, cam_xpos, cam_xmat) of ``data``, cached for the last data seen."""
        if self._dv_data is not data:
            self._dv = (data.geom_xpos, data.cam_xpos, data.cam_xmat)
            self._dv_data = data
        return self._dv

    def _frustum_planes(self, fovy: float, aspect: float) -> np.ndarray:
        """(4, 6): outward unit normals of the near, far, right, left, top and bottom planes
        in the camera frame (x right, y up, looking along -z; rows 0-2) and their offsets (row
        3, less a small margin). MuJoCo fixes the vertical field of view and widens the
        horizontal one to the viewport's aspect ratio."""
        key = (fovy, aspect)
        if self._planes_key != key:
            m = self.model
            extent = float(m.stat.extent)
            znear, zfar = float(m.vis.map.znear) * extent, float(m.vis.map.zfar) * extent
            ty = math.tan(math.radians(0.5 * fovy))
            tx = ty * aspect
            sx, sy = 1.0 / math.sqrt(1.0 + tx * tx), 1.0 / math.sqrt(1.0 + ty * ty)
            self._planes = np.array(
                [
                    [0.0, 0.0, sx, -sx, 0.0, 0.0],
                    [0.0, 0.0, 0.0, 0.0, sy, -sy],
                    [1.0, -1.0, tx * sx, tx * sx, ty * sy, ty * sy],
                    [znear, -zfar, 0.0, 0.0, 0.0, 0.0],
                ]
            )
            self._planes[3] -= 1e-6
            self._planes_key = key
        return self._planes

    def _bound_radii(self, idx: np.ndarray) -> np.ndarray:
        """Conservative bounding-sphere radii about ``geom_xpos`` of cullable geoms ``idx``:
        the sum of the size entries for primitives (>= the exact radius of each shape, from
        the current sizes: tasks resize geoms in place), the farthest vertex for meshes
        (cached; ``upload_mesh`` and ``set_model`` refresh it, as they do what GL draws);
        padded for rounding."""
        v = self._views
        r = v["geom_size"][idx] @ self._pad
        if self._cull_mesh.size:
            if self._mesh_r is None:
                k = self._cull_mesh
                vert = v["mesh_vert"]
                far = np.maximum.reduceat(np.einsum("ij,ij->i", vert, vert), v["mesh_vertadr"])
                self._mesh_r = np.zeros(len(self._is_mesh))
                self._mesh_r[k] = np.sqrt(far[v["geom_dataid"][k]], dtype=np.float64) * self._pad[0]
            r = np.where(self._is_mesh[idx], self._mesh_r[idx], r)
        return r

    def _linear_depth(self, buf: np.ndarray) -> np.ndarray:
        extent = self.model.stat.extent
        znear = np.float32(self.model.vis.map.znear * extent)
        zfar = np.float32(self.model.vis.map.zfar * extent)
        c = -(zfar + znear) / (zfar - znear)
        d = -(np.float32(2) * zfar * znear) / (zfar - znear)
        c = np.float32(-0.5) * c - np.float32(0.5)  # reversed-Z projection
        d = np.float32(-0.5) * d
        return (d / (buf.astype(np.float64) + c)).astype(np.float32)

    def close(self) -> None:
        global _CURRENT
        if self._gl is None:
            return
        _CURRENT = None
        try:
            self._gl.make_current()
            if self._ctx is not None:
                self._ctx.free()
            self._gl.free()
        finally:
            self._ctx = None
            self._gl = None

    def __del__(self, _suppress=contextlib.suppress):  # bound now: at interpreter exit
        with _suppress(Exception):  # module globals may already be gone
            self.close()
