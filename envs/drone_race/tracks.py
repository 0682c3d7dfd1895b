"""Race tracks: gate centres and headings from a few generators.

A track is data (``Track``): gate centres, the heading (yaw) each gate must be flown through,
and whether it is a closed loop. Gates are vertical; a gate's normal is
``(cos yaw, sin yaw, 0)``. Dimensions are for a 5-inch racer; ``scale`` shrinks a track for
micro quads. Every generator is deterministic in its arguments (``random`` in its seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["TRACKS", "Track", "circle", "figure_eight", "slalom", "random_track", "make_track"]


@dataclass(frozen=True)
class Track:
    name: str
    pos: np.ndarray  # (n, 3) gate centres, m
    yaw: np.ndarray  # (n,) heading of flight through each gate, rad
    closed: bool  # the last gate leads back to the first

    def __post_init__(self) -> None:
        if self.pos.ndim != 2 or self.pos.shape[1] != 3 or len(self.pos) < 2:
            raise ValueError(f"track {self.name!r} needs (n>=2, 3) gate positions")
        if self.yaw.shape != (len(self.pos),):
            raise ValueError(f"track {self.name!r}: one yaw per gate")

    @property
    def n(self) -> int:
        return len(self.pos)

    @property
    def normals(self) -> np.ndarray:
        return np.stack([np.cos(self.yaw), np.sin(self.yaw), np.zeros(self.n)], axis=1)

    def start(self, distance: float) -> tuple[np.ndarray, float]:
        """A start pose ``distance`` before the first gate, facing it."""
        return self.pos[0] - distance * self.normals[0], float(self.yaw[0])

    def min_spacing(self) -> float:
        d = np.linalg.norm(self.pos[:, None, :] - self.pos[None, :, :], axis=-1)
        return float(d[~np.eye(self.n, dtype=bool)].min())


def _tangent_yaw(pos: np.ndarray, closed: bool) -> np.ndarray:
    """Heading of a smooth path through the points: central differences."""
    nxt = np.roll(pos, -1, axis=0)
    prv = np.roll(pos, 1, axis=0)
    if not closed:
        nxt[-1] = 2 * pos[-1] - pos[-2]
        prv[0] = 2 * pos[0] - pos[1]
    d = nxt - prv
    return np.arctan2(d[:, 1], d[:, 0])


def circle(n: int = 8, radius: float = 6.0, height: float = 2.0, scale: float = 1.0) -> Track:
    """n gates on a circle, flown counter-clockwise."""
    t = 2 * np.pi * np.arange(n) / n
    r = radius * scale
    pos = np.stack([r * np.cos(t), r * np.sin(t), np.full(n, height * scale)], axis=1)
    return Track("circle", pos, t + np.pi / 2, closed=True)


def figure_eight(
    n_per_loop: int = 4, radius: float = 5.0, height: float = 2.0, scale: float = 1.0
) -> Track:
    """Two tangent circles flown in opposite senses (an "8" through the origin), n_per_loop
    gates on each; no gate near the tangent point, heights vary a little."""
    r = radius * scale
    # right loop: centre (r, 0), counter-clockwise; left loop: centre (-r, 0), clockwise
    ang = np.radians(np.linspace(-120.0, 120.0, n_per_loop))
    right = np.stack([r + r * np.cos(ang), r * np.sin(ang)], axis=1)
    yaw_r = ang + np.pi / 2
    ang_l = np.radians(np.linspace(-60.0, -300.0, n_per_loop))
    left = np.stack([-r + r * np.cos(ang_l), r * np.sin(ang_l)], axis=1)
    yaw_l = ang_l - np.pi / 2
    xy = np.concatenate([right, left])
    k = np.arange(2 * n_per_loop)
    z = (height + 0.3 * np.sin(np.pi * k / n_per_loop)) * scale
    pos = np.column_stack([xy, z])
    return Track("figure_eight", pos, np.concatenate([yaw_r, yaw_l]), closed=True)


def slalom(
    n: int = 7, spacing: float = 5.0, offset: float = 1.5, height: float = 2.0, scale: float = 1.0
) -> Track:
    """n gates along +x alternating left/right, centred on the origin (open track)."""
    i = np.arange(n)
    y = np.where(i % 2 == 0, offset, -offset) * scale
    x = (i - (n - 1) / 2.0) * spacing * scale
    pos = np.stack([x, y, np.full(n, height * scale)], axis=1)
    pos[0, 1] = 0.0
    return Track("slalom", pos, _tangent_yaw(pos, closed=False), closed=False)


def random_track(
    seed: int,
    n: int = 7,
    scale: float = 1.0,
    half_extent: float = 12.0,
    min_gap: float = 5.0,
    max_gap: float = 9.0,
    max_turn_deg: float = 60.0,
    height: tuple[float, float] = (1.2, 3.0),
    min_separation: float = 3.5,
) -> Track:
    """A random valid open track: gates one after another with bounded gaps and turns.

    Valid means: every gate inside the square of ``half_extent``, consecutive gaps in
    [min_gap, max_gap], turns up to ``max_turn_deg`` and no two gates closer than
    ``min_separation`` (all lengths times ``scale``). Retries deterministically from ``seed``.
    """
    rng = np.random.default_rng(int(seed))
    lim = half_extent * scale
    for _attempt in range(200):
        heading = rng.uniform(-np.pi, np.pi)
        pts = [np.array([0.0, 0.0, rng.uniform(*height) * scale])]
        ok = True
        for _ in range(n - 1):
            for _try in range(30):
                h = heading + math.radians(rng.uniform(-max_turn_deg, max_turn_deg))
                gap = rng.uniform(min_gap, max_gap) * scale
                p = pts[-1] + gap * np.array([math.cos(h), math.sin(h), 0.0])
                p[2] = rng.uniform(*height) * scale
                inside = abs(p[0]) <= lim and abs(p[1]) <= lim
                far = all(np.linalg.norm(p - q) >= min_separation * scale for q in pts)
                if inside and far:
                    pts.append(p)
                    heading = h
                    break
            else:
                ok = False
                break
        if ok:
            pos = np.array(pts)
            return Track("random", pos, _tangent_yaw(pos, closed=False), closed=False)
    raise RuntimeError(f"no valid random track for seed {seed} after 200 attempts")


TRACKS = ("circle", "figure_eight", "slalom", "random")


def make_track(name: str, seed: int = 0, scale: float = 1.0) -> Track:
    """A track by generator name (``random`` uses ``seed``)."""
    if name == "circle":
        return circle(scale=scale)
    if name == "figure_eight":
        return figure_eight(scale=scale)
    if name == "slalom":
        return slalom(scale=scale)
    if name == "random":
        return random_track(seed, scale=scale)
    raise ValueError(f"unknown track {name!r}; choose from {list(TRACKS)}")
