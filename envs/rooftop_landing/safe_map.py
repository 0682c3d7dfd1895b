"""Ground-truth landing maps computed from a city's geometry (numpy + OpenCV, no MuJoCo).

A grid over the block (0.1 m cells by default) holds the height map (roof surfaces and clutter
tops), the roof id and planar-face id of every cell, the surface tilt and an obstacle mask
(clutter and parapets, rasterized conservatively: any cell they overlap). From those:

* **free**: the top surface is a roof face with tilt <= ``max_tilt_deg`` (16 deg, urban-landing
  literature), no obstacle, not on the seam between two faces (ridges, steps, roof edges).
* **clearance**: distance (m) from a free cell's centre to the nearest non-free cell: the
  radius of the largest clear circle centred there (5x5-mask Euclidean distance transform,
  within 2 % of exact: below the raster's own error).
* **safe**: the drone's footprint keeps ``clearance`` (0.2 m) from anything non-free
  (``clearance >= drone_radius + clearance``) *and* the connected landable region contains a
  clear circle of at least ``min_area`` (4 m^2): the literature's "large enough flat area".
* **sites**: one per safe region, at the centre of its largest clear circle (the middle of the
  plateau when the maximum is not unique), sorted by that radius. ``sites[0]`` is the best
  touchdown point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from .city import City, CityParams, generate_city

__all__ = ["SafeMapConfig", "Site", "SafeMap", "compute_safe_map", "generate_landable_city"]


@dataclass(frozen=True)
class SafeMapConfig:
    """Landing-site criteria (metres, degrees) and the grid resolution."""

    resolution: float = 0.1
    max_tilt_deg: float = 16.0
    clearance: float = 0.2
    drone_radius: float = 0.2235  # racer: arm + propeller radius
    min_area: float = 4.0
    margin: float = 1.0  # grid border around the block (m)
    max_sites: int = 16

    def __post_init__(self) -> None:
        for f in ("resolution", "drone_radius", "min_area"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"SafeMapConfig.{f} must be a positive number, got {v!r}")
        if not 0 < self.max_tilt_deg < 90:
            raise ValueError(f"max_tilt_deg must be in (0, 90), got {self.max_tilt_deg!r}")
        if self.clearance < 0 or self.margin < self.resolution:
            raise ValueError(
                f"need clearance >= 0 and margin >= resolution, got {self.clearance}, {self.margin}"
            )

    @property
    def landable_radius(self) -> float:
        """Smallest clearance at a touchdown point: drone footprint + margin."""
        return self.drone_radius + self.clearance

    @property
    def site_radius(self) -> float:
        """Smallest largest-clear-circle radius of a valid site (area >= min_area)."""
        return max(self.landable_radius, math.sqrt(self.min_area / math.pi))


@dataclass(frozen=True)
class Site:
    """A candidate touchdown point: centre of a safe region's largest clear circle."""

    x: float
    y: float
    z: float
    radius: float  # clear-circle radius (m)
    area: float  # landable area of the region (m^2)
    roof: int
    tilt_deg: float

    @property
    def pos(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])

    def as_array(self) -> np.ndarray:
        """(x, y, z, radius, area, roof, tilt_deg) as float64."""
        return np.array([self.x, self.y, self.z, self.radius, self.area, self.roof, self.tilt_deg])


@dataclass
class SafeMap:
    """Per-cell ground truth; arrays are indexed [row = y, col = x], cell (0, 0) at ``origin``."""

    origin: tuple[float, float]
    resolution: float
    height: np.ndarray  # float32, m: top surface (roof or clutter; 0 on the street)
    surface: np.ndarray  # float32, m: roof surface without clutter (street: 0)
    tilt_deg: np.ndarray  # float32: tilt of the roof surface
    roof: np.ndarray  # int16: roof id of the cell's surface, -1 street
    obstacle: np.ndarray  # bool: clutter or parapet over the cell, or a face steeper than allowed
    free: np.ndarray  # bool
    clearance: np.ndarray  # float32, m (0 where not free)
    safe: np.ndarray  # bool
    sites: list[Site]
    config: SafeMapConfig

    @property
    def shape(self) -> tuple[int, int]:
        return self.height.shape  # type: ignore[return-value]

    @property
    def best(self) -> Site | None:
        return self.sites[0] if self.sites else None

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) covered by the grid."""
        h, w = self.shape
        x0, y0 = self.origin
        return (x0, y0, x0 + w * self.resolution, y0 + h * self.resolution)

    def cells(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, col, inside) for world points; indices clipped to the grid."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        c = np.floor((x - self.origin[0]) / self.resolution).astype(np.int64)
        r = np.floor((y - self.origin[1]) / self.resolution).astype(np.int64)
        h, w = self.shape
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        return np.clip(r, 0, h - 1), np.clip(c, 0, w - 1), inside

    def cell(self, x: float, y: float) -> tuple[int, int] | None:
        """(row, col) of one world point, or None outside the grid (scalar fast path)."""
        c = int((x - self.origin[0]) // self.resolution)
        r = int((y - self.origin[1]) // self.resolution)
        h, w = self.height.shape
        return (r, c) if 0 <= r < h and 0 <= c < w else None

    def is_safe(self, x: Any, y: Any) -> np.ndarray:
        r, c, inside = self.cells(x, y)
        return self.safe[r, c] & inside

    def height_at(self, x: Any, y: Any) -> np.ndarray:
        r, c, inside = self.cells(x, y)
        return np.where(inside, self.height[r, c], 0.0)

    def surface_at(self, x: Any, y: Any) -> np.ndarray:
        r, c, inside = self.cells(x, y)
        return np.where(inside, self.surface[r, c], 0.0)

    def clearance_at(self, x: Any, y: Any) -> np.ndarray:
        r, c, inside = self.cells(x, y)
        return np.where(inside, self.clearance[r, c], 0.0)

    def roof_at(self, x: Any, y: Any) -> np.ndarray:
        r, c, inside = self.cells(x, y)
        return np.where(inside, self.roof[r, c], -1)

    def sites_array(self, n: int | None = None) -> np.ndarray:
        """(n, 7) rows of ``Site.as_array()`` (padded with NaN), best first."""
        n = len(self.sites) if n is None else n
        out = np.full((n, 7), np.nan)
        for i, s in enumerate(self.sites[:n]):
            out[i] = s.as_array()
        return out

    def to_info(self) -> dict[str, Any]:
        """What the env puts in ``info`` at reset (arrays are the map's own, do not modify)."""
        return {
            "safe_map": self.safe,
            "height_map": self.height,
            "clearance_map": self.clearance,
            "map_origin": np.asarray(self.origin),
            "map_resolution": self.resolution,
            "sites": self.sites_array(),
            "best_site": self.best.as_array() if self.best else np.full(7, np.nan),
        }


def compute_safe_map(city: City, config: SafeMapConfig | None = None) -> SafeMap:
    """Rasterize ``city`` and derive free / clearance / safe maps and the candidate sites."""
    cfg = config or SafeMapConfig()
    res, m = cfg.resolution, cfg.margin
    bx0, by0, bx1, by1 = city.bounds
    x0, y0 = bx0 - m, by0 - m
    w = int(math.ceil((bx1 - bx0 + 2 * m) / res))
    h = int(math.ceil((by1 - by0 + 2 * m) / res))
    xs = (x0 + (np.arange(w) + 0.5) * res).astype(np.float32)
    ys = (y0 + (np.arange(h) + 0.5) * res).astype(np.float32)

    surface = np.zeros((h, w), np.float32)
    tilt = np.zeros((h, w), np.float32)
    roof_id = np.full((h, w), -1, np.int16)
    face = np.full((h, w), -1, np.int16)
    blocked = np.zeros((h, w), bool)  # obstacles and steep faces

    def span(a: float, b: float, o: float, n: int) -> slice:  # cells whose centre is inside
        i0 = math.ceil((a - o) / res - 0.5 - 1e-9)
        i1 = math.ceil((b - o) / res - 0.5 - 1e-9)
        return slice(min(max(i0, 0), n), min(max(i1, 0), n))

    # roof surfaces, lowest first so a higher volume (setback tower) covers its base roof
    for r in sorted(city.roofs, key=lambda r: r.z):
        rx0, ry0, rx1, ry1 = r.rect
        sx, sy = span(rx0, rx1, x0, w), span(ry0, ry1, y0, h)
        if sx.start >= sx.stop or sy.start >= sy.stop:
            continue
        if r.sloped:
            z, f = r.surface(xs[None, sx], ys[sy, None])
            surface[sy, sx] = z
            face[sy, sx] = 4 * r.id + f
        else:
            surface[sy, sx] = r.z
            face[sy, sx] = 4 * r.id
        tilt[sy, sx] = r.slope_deg
        roof_id[sy, sx] = r.id
        blocked[sy, sx] = r.slope_deg > cfg.max_tilt_deg

    height = surface.copy()
    # obstacles: every cell a clutter or parapet AABB overlaps (conservative), discs for
    # upright cylinders
    arr = city.arrays
    obst = np.array([p.role in ("clutter", "parapet") for p in city.prims], bool)
    if obst.any():
        lo, hi, cyl = arr["lo"][obst], arr["hi"][obst], arr["cyl"][obst]
        pos, rad = arr["pos"][obst], arr["size"][obst, 0]
        c0 = np.clip(np.floor((lo[:, 0] - x0) / res + 1e-9), 0, w).astype(int).tolist()
        c1 = np.clip(np.ceil((hi[:, 0] - x0) / res - 1e-9), 0, w).astype(int).tolist()
        r0 = np.clip(np.floor((lo[:, 1] - y0) / res + 1e-9), 0, h).astype(int).tolist()
        r1 = np.clip(np.ceil((hi[:, 1] - y0) / res - 1e-9), 0, h).astype(int).tolist()
        top = hi[:, 2].tolist()
        for k in range(len(top)):
            if c0[k] >= c1[k] or r0[k] >= r1[k]:
                continue
            sy, sx = slice(r0[k], r1[k]), slice(c0[k], c1[k])
            hv = height[sy, sx]
            if cyl[k]:
                dx = np.maximum(np.abs(xs[sx] - pos[k, 0]) - res / 2, 0.0)
                dy = np.maximum(np.abs(ys[sy] - pos[k, 1]) - res / 2, 0.0)
                cover = dx[None, :] ** 2 + dy[:, None] ** 2 < rad[k] ** 2
                blocked[sy, sx] |= cover
                hv[cover] = np.maximum(hv[cover], top[k])
            else:
                blocked[sy, sx] = True
                np.maximum(hv, top[k], out=hv)

    # seams between different roof faces (ridges, steps, adjoining roofs) are not landable
    seam = np.zeros((h, w), bool)
    dh = (face[1:, :] != face[:-1, :]) & (np.minimum(face[1:, :], face[:-1, :]) >= 0)
    dv = (face[:, 1:] != face[:, :-1]) & (np.minimum(face[:, 1:], face[:, :-1]) >= 0)
    seam[1:, :] |= dh
    seam[:-1, :] |= dh
    seam[:, 1:] |= dv
    seam[:, :-1] |= dv
    free = face >= 0
    free &= ~blocked
    free &= ~seam

    clearance = np.zeros((h, w), np.float32)
    safe = np.zeros((h, w), bool)
    found = []
    # the rest only concerns free cells: work on their bounding box (~85 % of the grid); a
    # one-cell non-free border keeps distances exact, as the grid's own border would
    rows, cols = np.flatnonzero(free.any(axis=1)), np.flatnonzero(free.any(axis=0))
    if len(rows):
        ra, rb = max(rows[0] - 1, 0), min(rows[-1] + 2, h)
        ca, cb = max(cols[0] - 1, 0), min(cols[-1] + 2, w)
        crop = (slice(ra, rb), slice(ca, cb))
        # 5x5-mask distance transform: within 2 % of the exact Euclidean distance (< 1 cm at
        # the 0.42 m landable threshold, far below the 5 cm rasterization error) at a
        # quarter of the cost of DIST_MASK_PRECISE
        dist = cv2.distanceTransform(free[crop].view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
        dist *= res
        dist -= res / 2
        np.maximum(dist, 0.0, out=clearance[crop])  # 0 on non-free cells (distance 0 there)
        cl_crop = clearance[crop]
        landable = cl_crop >= cfg.landable_radius - 1e-6
        n, labels, stats, _ = cv2.connectedComponentsWithStats(
            landable.view(np.uint8), connectivity=4
        )
        lut = np.zeros(max(n, 1), bool)
        # a site cell has clearance >= site_radius, so its whole disc of radius
        # site_radius - landable_radius is landable: smaller components hold no site
        r_min = max(cfg.site_radius - cfg.landable_radius - 2 * res, 0.0) / res
        min_cells = math.pi * r_min * r_min
        for k in np.flatnonzero(stats[:, 4] >= min_cells).tolist():
            if k == 0:
                continue
            c0_, r0_, bw, bh, area = stats[k].tolist()
            box = (slice(r0_, r0_ + bh), slice(c0_, c0_ + bw))
            mine = labels[box] == k
            cl = np.where(mine, cl_crop[box], -1.0)
            md = float(cl.max())
            if md < cfg.site_radius - 1e-6:
                continue
            lut[k] = True
            # the middle of the plateau of maxima: centre of the largest clear circle
            rr, cc = np.nonzero(cl >= md - res / 2)
            j = int(np.argmin((rr - rr.mean()) ** 2 + (cc - cc.mean()) ** 2))
            found.append((md, ra + r0_ + int(rr[j]), ca + c0_ + int(cc[j]), area * res * res))
        safe[crop] = lut[labels]
    found.sort(key=lambda t: -t[0])
    sites = [
        Site(float(xs[c_]), float(ys[r_]), float(surface[r_, c_]), float(clearance[r_, c_]),
             float(a), int(roof_id[r_, c_]), float(tilt[r_, c_]))
        for _, r_, c_, a in found[: cfg.max_sites]
    ]  # fmt: skip
    return SafeMap((x0, y0), res, height, surface, tilt, roof_id, blocked, free, clearance, safe,
                   sites, cfg)  # fmt: skip


def generate_landable_city(
    rng: np.random.Generator | int,
    params: CityParams | None = None,
    config: SafeMapConfig | None = None,
    require_site: bool = True,
    **overrides: Any,
) -> tuple[City, SafeMap]:
    """A city and its safe map; with ``require_site`` the city has at least one safe site.

    When a generated block has none, clutter groups are removed from its largest flat roof
    (most recent group first) until one appears, so the layout stays as close to the sample as
    possible and the result is deterministic.
    """
    city = generate_city(rng, params, **overrides)
    smap = compute_safe_map(city, config)
    if not require_site or smap.sites:
        return city, smap
    flat = sorted((r for r in city.roofs if not r.sloped), key=lambda r: -r.area)
    for roof in flat:
        groups = sorted({p.group for p in city.prims if p.roof == roof.id and p.group >= 0})
        while groups:
            city = city.without_groups({groups.pop()})
            smap = compute_safe_map(city, config)
            if smap.sites:
                return city, smap
    # no clutter left anywhere useful: strip parapets of the largest roof as a last resort
    if flat:
        big = flat[0]
        roofs = list(city.roofs)
        roofs[big.id] = replace(big, parapet=0.0, parapet_t=0.0)
        prims = tuple(p for p in city.prims if not (p.role == "parapet" and p.roof == big.id))
        city = replace(city, roofs=tuple(roofs), prims=prims)
        smap = compute_safe_map(city, config)
    if not smap.sites:
        raise RuntimeError(f"city seed {city.seed} has no safe landing site even when cleared")
    return city, smap
