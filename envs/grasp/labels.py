"""Ground-truth labels for an observation image: segmentation, 6-DoF poses, 2-D boxes.

Boxes are computed independently of the segmentation render, by projecting each object's
3-D bounding box (from its exact support function) through the camera's pinhole model, so
a test can check one against the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from simenvs.envs.grasp.objects import GraspObject

__all__ = ["object_labels", "project_points", "object_box_corners"]

_AXES = np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, 1.0], [0, 0, -1.0]])


def object_box_corners(obj: GraspObject) -> np.ndarray:
    """The 8 corners (body frame) of the object's tight box along its body axes."""
    h = obj.support(_AXES)
    xs, ys, zs = (h[0], -h[1]), (h[2], -h[3]), (h[4], -h[5])
    return np.array([[x, y, z] for x in xs for y in ys for z in zs])


def project_points(
    model: mujoco.MjModel, data: mujoco.MjData, camera: str | int, pts: np.ndarray, w: int, h: int
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u right, v down; pixel (c, r) spans [c, c+1) x [r, r+1)) of world
    points, and whether each is in front of the camera."""
    cid = camera if isinstance(camera, (int, np.integer)) else model.camera(camera).id
    pc = (np.asarray(pts) - data.cam_xpos[cid]) @ data.cam_xmat[cid].reshape(3, 3)
    f = 0.5 * h / np.tan(np.deg2rad(model.cam_fovy[cid]) / 2)
    depth = -pc[:, 2]
    front = depth > 1e-6
    depth = np.where(front, depth, 1e-6)
    uv = np.c_[0.5 * w + f * pc[:, 0] / depth, 0.5 * h - f * pc[:, 1] / depth]
    return uv, front


def object_labels(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    camera: str | int,
    seg_geoms: np.ndarray,
    geom_obj: np.ndarray,
    bodies: Sequence[int],
    objects: Sequence[GraspObject],
    w: int,
    h: int,
) -> dict[str, np.ndarray]:
    """``segmentation`` (h, w) uint8 (0 none, i+1 object i), ``object_poses`` (n, 7) and
    ``object_bboxes`` (n, 4) float32 x0, y0, x1, y1 clipped to the image, -1 if out of view."""
    lut = np.append(geom_obj, -1)  # index -1 (background) maps to -1
    mask = (lut[seg_geoms] + 1).astype(np.uint8)
    n = len(objects)
    poses = np.zeros((n, 7), np.float32)
    boxes = np.full((n, 4), -1.0, np.float32)
    for i, (b, obj) in enumerate(zip(bodies, objects)):
        pos, mat = data.xpos[b], data.xmat[b].reshape(3, 3)
        poses[i, :3], poses[i, 3:] = pos, data.xquat[b]
        uv, front = project_points(model, data, camera, object_box_corners(obj) @ mat.T + pos, w, h)
        if not front.all():
            continue
        x0, y0 = np.clip(uv.min(axis=0), 0, (w, h))
        x1, y1 = np.clip(uv.max(axis=0), 0, (w, h))
        if x1 > x0 and y1 > y0:
            boxes[i] = (x0, y0, x1, y1)
    return {"segmentation": mask, "object_poses": poses, "object_bboxes": boxes}
