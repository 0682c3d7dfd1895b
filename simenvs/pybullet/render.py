"""Camera images of a ``BulletWorld`` through PyBullet's TinyRenderer (CPU, headless).

``BulletRenderer`` has the interface of ``simenvs.core.rendering.SceneRenderer`` (``render``,
``upload_texture``, ``set_model``, ``close``), so ``SimEnv.render_camera_image`` and every
observation mode work unchanged. Cameras are MuJoCo's: pose (``cam_xpos``/``cam_xmat``, after
the randomized offsets), vertical field of view and the near/far planes of the model, so both
engines see the same frustum; depth is metres along the optical axis like MuJoCo's.
Lighting maps the model's directional lights and headlight to TinyRenderer's single light.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from .world import BulletWorld

__all__ = ["BulletRenderer", "BACKGROUND"]

BACKGROUND = (0, 0, 0)  # MuJoCo's clear colour without a skybox


class BulletRenderer:
    """TinyRenderer images of ``world`` seen from the cameras of its MuJoCo model."""

    def __init__(self, world: BulletWorld):
        import pybullet as pb

        self.pb = pb
        self.world = world
        self.model = world.model

    def set_model(self, model: mujoco.MjModel) -> None:
        self.model = model

    def upload_texture(self, texid: int) -> None:
        self.world.mark_texture(texid)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ camera
    def _camera_id(self, camera: int | str) -> int:
        m = self.model
        if isinstance(camera, str):
            cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cid < 0:
                names = [m.camera(i).name for i in range(m.ncam)]
                raise ValueError(f"unknown camera {camera!r}; cameras: {names} (or -1: free)")
            return cid
        cid = int(camera)
        if not -1 <= cid < m.ncam:
            raise ValueError(f"camera id {cid} out of range [-1, {m.ncam})")
        return cid

    def _pose(
        self, data: mujoco.MjData, cid: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(eye, forward, up, fovy) of a model camera or MuJoCo's default free camera."""
        m = self.model
        if cid >= 0:  # after mj_kinematics
            mujoco.mj_comPos(m, data)
            mujoco.mj_camlight(m, data)
            R = data.cam_xmat[cid].reshape(3, 3)
            eye = data.cam_xpos[cid].copy()
            return eye, -R[:, 2].copy(), R[:, 1].copy(), float(m.cam_fovy[cid])
        az = math.radians(float(m.vis.global_.azimuth))
        el = math.radians(float(m.vis.global_.elevation))
        fwd = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
        eye = np.asarray(m.stat.center) - 1.5 * float(m.stat.extent) * fwd
        up = np.array([0.0, 0.0, 1.0]) - fwd * fwd[2]
        return eye, fwd, up / np.linalg.norm(up), float(m.vis.global_.fovy)

    def _light(self, fwd: np.ndarray) -> dict:
        m = self.model
        ambient = float(np.mean(m.vis.headlight.ambient)) if m.vis.headlight.active else 0.0
        head_diffuse = float(np.mean(m.vis.headlight.diffuse)) if m.vis.headlight.active else 0.0
        direction, diffuse = None, 0.0
        for i in range(m.nlight):
            if not m.light_active[i]:
                continue
            ambient += float(np.mean(m.light_ambient[i]))
            if direction is None:
                direction = -np.asarray(m.light_dir[i], dtype=float)
                diffuse = float(np.mean(m.light_diffuse[i]))
        if direction is None:  # only the headlight: light from the camera
            direction, diffuse, head_diffuse = -fwd, head_diffuse, 0.0
        return {
            "lightDirection": direction.tolist(),
            "lightColor": [1.0, 1.0, 1.0],
            "lightAmbientCoeff": min(1.0, ambient + 0.5 * head_diffuse),
            "lightDiffuseCoeff": min(1.0, diffuse + 0.3 * head_diffuse),
            "lightSpecularCoeff": 0.05,
            "shadow": 0,
        }

    # ------------------------------------------------------------------ render
    def render(
        self, data: mujoco.MjData, camera: int | str, width: int, height: int, mode: str = "rgb"
    ) -> np.ndarray:
        """``mode``: "rgb" -> (H, W, 3) uint8; "depth" -> (H, W) float32 metres;
        "segmentation" -> (H, W) int32 MuJoCo geom id (-1 background)."""
        if mode not in ("rgb", "depth", "segmentation"):
            raise ValueError(f"unknown render mode {mode!r}; modes: rgb, depth, segmentation")
        pb, m = self.pb, self.model
        mujoco.mj_kinematics(m, data)  # mocap edits since the last step (lazy distractors)
        self.world.sync_visuals(data)
        eye, fwd, up, fovy = self._pose(data, self._camera_id(camera))
        extent = float(m.stat.extent)
        near, far = float(m.vis.map.znear) * extent, float(m.vis.map.zfar) * extent
        view = pb.computeViewMatrix(eye.tolist(), (eye + fwd).tolist(), up.tolist())
        proj = pb.computeProjectionMatrixFOV(fovy, width / height, near, far)
        flags = 0 if mode == "segmentation" else pb.ER_NO_SEGMENTATION_MASK
        _, _, rgb, depth, seg = pb.getCameraImage(
            int(width), int(height), view, proj, renderer=pb.ER_TINY_RENDERER, flags=flags,
            physicsClientId=self.world.render_client, **self._light(fwd),
        )  # fmt: skip
        buf = np.asarray(depth, dtype=np.float64).reshape(height, width)
        if mode == "depth":
            z = far * near / (far - (far - near) * buf)
            return z.astype(np.float32)
        if mode == "segmentation":
            ids = np.asarray(seg, dtype=np.int64).reshape(height, width) & ((1 << 24) - 1)
            ids[np.asarray(seg).reshape(height, width) < 0] = -1
            lut = self.world.uid_to_geom
            out = np.full((height, width), -1, dtype=np.int32)
            ok = (ids >= 0) & (ids < len(lut))
            out[ok] = lut[ids[ok]]
            return out
        img = np.asarray(rgb, dtype=np.uint8).reshape(height, width, 4)[..., :3].copy()
        img[buf >= 1.0] = BACKGROUND
        return img
