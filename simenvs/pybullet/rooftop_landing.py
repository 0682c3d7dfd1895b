"""``simenvs/RooftopLanding-v0`` on PyBullet: the MuJoCo task's city block, rules and spaces,
PyBullet's physics, contacts and TinyRenderer images (see ``simenvs.pybullet.engine``)."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from simenvs.core import SimEnv
from simenvs.envs.rooftop_landing.env import RooftopLandingEnv
from simenvs.envs.rooftop_landing.scene import CITY_GROUP, COLLISION_GROUP

from .engine import CONTACT_TOLERANCE, PyBulletQuadMixin

__all__ = ["PyBulletRooftopLandingEnv"]


class PyBulletRooftopLandingEnv(PyBulletQuadMixin, RooftopLandingEnv):
    """``RooftopLandingEnv`` integrated by PyBullet.

    Same keyword arguments, spaces, reward, ``info`` and randomization as
    ``RooftopLandingEnv``: a seed gives the same city block (the task's primitive pool is
    mirrored into PyBullet whenever it changes), the same start and the same safe map.
    Touchdowns, obstacle hits and landing sites are judged by the task's own rules on
    PyBullet's contacts; the range grid is cast by MuJoCo on the same geometry.
    """

    def _bullet_build(self) -> None:
        super()._bullet_build()
        # draw the city's collision primitives (group 3) rather than the per-episode merged
        # meshes MuJoCo draws (group 2): the same boxes and cylinders, but PyBullet frees
        # primitive shapes with its world while a re-meshed city would leak megabytes/episode
        self._world.visible_groups = (CITY_GROUP, 1, COLLISION_GROUP)  # 1: quad, distractors

    def _contacts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scene geom ids, contact positions, |normal z|) of the quad, from PyBullet."""
        pb = self._pb
        pts = pb.getContactPoints(bodyA=self.bullet_quad.body, physicsClientId=self.bullet_client)
        rows = [p for p in pts if p[8] <= CONTACT_TOLERANCE]
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0)
        geoms = np.array([self._world.contact_geom(self.data, p) for p in rows], np.int64)
        keep = geoms >= 0
        pos = np.array([p[6] for p in rows], dtype=float).reshape(-1, 3)
        nz = np.abs(np.array([p[7][2] for p in rows], dtype=float))
        return geoms[keep], pos[keep], nz[keep]

    def render_camera_image(
        self, camera: str | int, width: int, height: int, mode: str = "rgb"
    ) -> np.ndarray:
        """``SimEnv``'s image path. The MuJoCo task uploads the height fields and city meshes
        it rewrote to its GL context first; PyBullet re-meshes changed geoms itself (see
        ``BulletWorld.sync_visuals``), so the pending uploads are only drained."""
        _drain_uploads(self._pool)
        return SimEnv.render_camera_image(self, camera, width, height, mode)


def _drain_uploads(pool: Any) -> None:
    """Mark the pool's pending GL uploads done (``upload(cb, ...)`` with no-op callbacks)."""
    upload = getattr(pool, "upload", None) or getattr(pool, "upload_hfields", None)
    if upload is None or not getattr(pool, "dirty", True):
        return
    n = sum(
        1
        for p in inspect.signature(upload).parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    upload(*([_noop] * n))


def _noop(*_: Any) -> None:
    pass
