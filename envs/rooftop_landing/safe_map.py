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
from .kernels import clearance_map, find_sites, free_cells, paint_obstacles, raster_roofs

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

    def span(a: float, b: float, o: float, n: int) -> slice:  # cells whose centre is inside
        i0 = math.ceil((a - o) / res - 0.5 - 1e-9)
        i1 = math.ceil((b - o) / res - 0.5 - 1e-9)
        return slice(min(max(i0, 0), n), min(max(i1, 0), n))

    # roof surfaces, lowest first so a higher volume (setback tower) covers its base roof:
    # spans and sloped surfaces (Roof.surface) here, the painting in one kernel (kernels.py)
    spans, rows, pz, pf = [], [], [np.zeros(0)], [np.zeros(0, np.int64)]
    off = 0
    for r in sorted(city.roofs, key=lambda r: r.z):
        rx0, ry0, rx1, ry1 = r.rect
        sx, sy = span(rx0, rx1, x0, w), span(ry0, ry1, y0, h)
        if sx.start >= sx.stop or sy.start >= sy.stop:
            continue
        spans.append((sx.start, sx.stop, sy.start, sy.stop))
        patch = -1
        if r.sloped:
            z, f = r.surface(xs[None, sx], ys[sy, None])
            pz.append(np.asarray(z, np.float64).ravel())
            pf.append(np.asarray(f, np.int64).ravel())
            patch, off = off, off + z.size
        rows.append((r.z, r.slope_deg, r.id, patch))
    tab = np.array(rows, float).reshape(-1, 4)
    surface, tilt, roof_id, face, blocked = raster_roofs(
        h,
        w,
        np.array(spans, np.int64).reshape(-1, 4),
        tab[:, 0].copy(),
        tab[:, 1].copy(),
        tab[:, 2].astype(np.int64),
        tab[:, 3].astype(np.int64),
        np.concatenate(pz),
        np.concatenate(pf),
        float(cfg.max_tilt_deg),
    )  # blocked: obstacles (below) and steep faces
    height = surface.copy()
    # obstacles: every cell a clutter or parapet AABB overlaps (conservative), discs for
    # upright cylinders. Painted lowest top first into one layer, so each cell ends with the
    # highest top over it (one write per part), then merged with the roofs in one pass.
    arr = city.arrays
    obst = np.array([p.role in ("clutter", "parapet") for p in city.prims], bool)
    if obst.any():
        lo, hi, cyl = arr["lo"][obst], arr["hi"][obst], arr["cyl"][obst]
        # squared radii as numpy's scalar power gives them (libm pow: kept out of the kernel)
        rad2 = np.zeros(len(cyl))
        rad2[cyl] = [r_**2 for r_ in arr["size"][obst, 0][cyl].tolist()]
        order = np.argsort(hi[:, 2], kind="stable")
        paint_obstacles(height, blocked, order, lo, hi, cyl, arr["pos"][obst], rad2, xs, ys,
                        x0, y0, res)  # fmt: skip

    # seams between different roof faces (ridges, steps, adjoining roofs) are not landable
    free = free_cells(face, blocked)

    clearance = np.zeros((h, w), np.float32)
    safe = np.zeros((h, w), bool)
    found: list[tuple[float, int, int, float]] = []
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
        # clearance = max(dist * res - res / 2, 0): 0 on non-free cells (distance 0 there)
        cl_crop = np.empty_like(dist)
        landable = clearance_map(dist, res, cl_crop, cfg.landable_radius - 1e-6)
        clearance[crop] = cl_crop
        found, safe[crop] = _sites(landable, cl_crop, cfg, ra, ca)
    found.sort(key=lambda t: -t[0])  # stable: ties stay in label (raster) order
    sites = [
        Site(float(xs[c_]), float(ys[r_]), float(surface[r_, c_]), float(clearance[r_, c_]),
             float(a), int(roof_id[r_, c_]), float(tilt[r_, c_]))
        for _, r_, c_, a in found[: cfg.max_sites]
    ]  # fmt: skip
    return SafeMap((x0, y0), res, height, surface, tilt, roof_id, blocked, free, clearance, safe,
                   sites, cfg)  # fmt: skip


def _sites(
    landable: np.ndarray, cl: np.ndarray, cfg: SafeMapConfig, ra: int, ca: int
) -> tuple[list[tuple[float, int, int, float]], np.ndarray]:
    """Safe regions of the cropped ``landable`` mask (4-connected) and their site cells, as
    (max clearance, row, col, area m^2) in label (raster) order, plus the safe mask.

    A region is safe when it holds a cell with clearance >= ``site_radius``. No labelling
    pass: only cells above ``site_radius - resolution`` are read (a region's maximum and the
    plateau within ``resolution / 2`` of it lie among them); the highest one not yet filled
    is its region's maximum, and a flood fill from it (with a value of its own) gives the
    region's exact area and bounding box and tells its cells apart. Regions without a site
    are never visited. Same regions, order and numbers as per-region statistics plus a scan
    of each region's bounding box (tests/test_city.py keeps that as the reference).
    """
    res = cfg.resolution
    lo = cfg.site_radius - res - 1e-3  # below every plateau bound md - res / 2 (md >= site)
    r_min = max(cfg.site_radius - cfg.landable_radius - 2 * res, 0.0) / res
    rows, n, mark = find_sites(
        landable, cl, lo, cfg.site_radius - 1e-6, res / 2, math.pi * r_min * r_min
    )  # the search as described above, in one kernel (kernels.py)
    if n < 0:  # more safe regions than uint8 values: label them instead
        return _sites_labelled(landable, cl, cfg, ra, ca)
    found = [
        (float(md), ra + int(r_), ca + int(c_), int(area) * res * res)
        for _, md, r_, c_, area in sorted(rows[:n].tolist(), key=lambda t: t[0])
    ]
    return found, mark > 1


def _sites_labelled(
    landable: np.ndarray, cl: np.ndarray, cfg: SafeMapConfig, ra: int, ca: int
) -> tuple[list[tuple[float, int, int, float]], np.ndarray]:
    """Safe regions of the cropped ``landable`` mask (4-connected) and their site cells, as
    (max clearance, row, col, area m^2) in label (raster) order, plus the safe mask.

    A region is safe when it holds a cell with clearance >= ``site_radius``, so only cells
    above ``site_radius - resolution`` (grouped by label) are read: a region's maximum and the
    plateau within ``resolution / 2`` of it lie among them. A flood fill from one of them
    gives the region's exact area and bounding box and marks it safe. Same regions, order and
    numbers as per-region statistics plus a scan of each region's bounding box (the previous
    implementation; tests/test_city.py keeps it as the reference), at about half the cost.
    ``_sites``' fallback when a block has more than 254 regions with a site.
    """
    res = cfg.resolution
    wc = landable.shape[1]
    mark = landable.view(np.uint8)
    n, labels = cv2.connectedComponents(mark, connectivity=4)
    mark = mark.copy()  # 1 landable; safe regions are filled with 2
    lo = cfg.site_radius - res - 1e-3  # below every plateau bound md - res / 2 (md >= site)
    high = cl >= lo
    high &= landable  # label 0 (not landable) is no region
    idx = np.flatnonzero(high)  # raster order
    clv, lab = cl[high], labels.ravel()[idx]
    top = np.full(n, -np.inf, np.float32)
    np.maximum.at(top, lab, clv)  # each region's maximum clearance (exact)
    top64 = top.astype(np.float64)
    # plateau candidates: a little below each region's md - res / 2 (the exact test follows
    # per region on these few cells, with the original float32 comparison)
    near = clv >= (top64 - (res / 2 + 1e-4))[lab]
    near &= (top64 >= cfg.site_radius - 1e-6)[lab]
    cand = np.flatnonzero(near)
    cand = cand[np.argsort(lab[cand], kind="stable")]  # by region, raster order within
    lab_c = lab[cand]
    # a site cell has clearance >= site_radius, so its whole disc of radius
    # site_radius - landable_radius is landable: smaller regions hold no site
    r_min = max(cfg.site_radius - cfg.landable_radius - 2 * res, 0.0) / res
    min_cells = math.pi * r_min * r_min
    found = []
    counts = np.bincount(lab_c, minlength=n)
    ends = np.cumsum(counts).tolist()
    for k in np.flatnonzero(counts).tolist():
        a, b = ends[k] - int(counts[k]), ends[k]
        md = float(top[k])
        cv, cells = clv[cand[a:b]], idx[cand[a:b]]
        i = int(cells[0])
        seed = (i % wc, i // wc)
        area, _, _, (c0, r0, _, _) = cv2.floodFill(mark, None, seed, 2, flags=4)
        if area < min_cells:
            cv2.floodFill(mark, None, seed, 3, flags=4)  # not safe after all
            continue
        # the middle of the plateau of maxima: centre of the largest clear circle (cells in
        # raster order and box-relative, as np.nonzero over the region's box gives them; the
        # means as np.mean gives them: exact integer sums, one rounding)
        sel = cells[cv >= md - res / 2]
        rr, cc = sel // wc - r0, sel % wc - c0
        j = int(
            np.argmin((rr - int(rr.sum()) / len(rr)) ** 2 + (cc - int(cc.sum()) / len(cc)) ** 2)
        )
        found.append((md, ra + r0 + int(rr[j]), ca + c0 + int(cc[j]), area * res * res))
    return found, mark == 2


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
