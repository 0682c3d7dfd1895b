"""Offscreen rendering that survives model swaps.

``mujoco.Renderer`` makes a new GL context per instance (50–60 ms). Tasks that rebuild
their scene per episode only need a new ``MjrContext`` on the existing GL context (~5 ms),
and observation images and ``render()`` frames of different sizes can share one context, so
this module keeps one GL context per env and renders any viewport up to its buffer size.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["SceneRenderer", "prepare_fast_rendering"]

_CURRENT = None  # the GL context made current last (one thread renders per process)


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
        self.scene = mujoco.MjvScene(model, maxgeom=self.max_geom)
        self.model = model

    def _make_current(self) -> None:
        """Switching GL contexts costs; skip it when this one is already current."""
        global _CURRENT
        if _CURRENT is not self._gl:
            self._gl.make_current()
            _CURRENT = self._gl

    def upload_mesh(self, meshid: int) -> None:
        """Re-upload a mesh after editing its vertices in place (procedural scenes)."""
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
        cid = camera
        if isinstance(camera, str):
            cid = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cid < 0:
                names = [self.model.camera(i).name for i in range(self.model.ncam)]
                raise ValueError(f"unknown camera {camera!r}; cameras: {names} (or -1: free)")
        if cid == -1:
            cam.type = mujoco.mjtCamera.mjCAMERA_FREE
            mujoco.mjv_defaultFreeCamera(self.model, cam)
        else:
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = int(cid)
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
        scene = self.scene
        mujoco.mjv_updateScene(
            self.model, data, self.option, None, self._camera_for(camera),
            mujoco.mjtCatBit.mjCAT_ALL, scene,
        )  # fmt: skip
        rect = mujoco.MjrRect(0, 0, int(width), int(height))
        seg = mode in ("depth", "segmentation")
        flags = scene.flags.copy()
        if seg:
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
            if mode == "rgb":
                return rgb.copy()
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

    def __del__(self):
        with contextlib.suppress(Exception):
            self.close()
