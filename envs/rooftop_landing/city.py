"""Procedural city block from a seed, as plain data (no MuJoCo here).

A block is cut into lots (recursive splits, like a k-d tree), each lot carries one building: a
box up to its roof with flat, stepped (a setback tower on part of the footprint), shed, gable
or hip roof; flat roofs may have a parapet. Rooftop clutter is placed *in groups with
structure* (rows of AC units, vent rows, skylight rows, solar arrays on rails, water tanks on
legs, antenna masts on base plates, stair entrances near an edge): each group is a footprint
rectangle packed inside the roof's free area with a gap to every other group, and every part
rests on the roof surface or on another part of its group, so nothing floats or interpenetrates
(``validate_city`` checks both).

Everything is real scale (metres): the task flies the 0.8 kg "racer" quad, so the
urban-landing criteria (tilt <= 16 deg, >= 0.2 m clearance, >= 4 m^2 clear) apply literally.

Geometry kept simple on purpose so a fixed pool of MuJoCo primitives can show any block
(``scene.py``): buildings, slabs, parapets and clutter are boxes (upright, or tilted about one
horizontal axis for solar panels) and upright cylinders; sloped roofs are height fields.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

__all__ = [
    "Prim",
    "Roof",
    "City",
    "CityParams",
    "ROOF_KINDS",
    "CLUTTER_KINDS",
    "KIND_LIMITS",
    "generate_city",
    "validate_city",
    "flat_city",
]

ROOF_KINDS = ("flat", "stepped", "shed", "gable", "hip")
# Every clutter kind (a Prim.kind with role "clutter"); material slots are derived from these.
CLUTTER_KINDS = (
    "stair_entrance",
    "ac_unit",
    "vent",
    "skylight",
    "water_tank",
    "tank_leg",
    "antenna",
    "antenna_base",
    "solar_panel",
    "solar_rail",
)
_GROUPS = ("ac_row", "vent_row", "skylight_row", "solar_array", "water_tank", "antenna")
# most parts of one kind a block may hold (what the renderer's per-material meshes are sized for;
# the generator drops groups that would exceed them)
KIND_LIMITS = {
    "stair_entrance": 24, "ac_unit": 96, "vent": 48, "skylight": 48, "water_tank": 12,
    "tank_leg": 48, "antenna": 32, "antenna_base": 32, "solar_panel": 48, "solar_rail": 40,
    "parapet": 96,
}  # fmt: skip

SLAB = 0.3  # roof slab thickness (m): a separate box so roofs and facades differ; thick
# enough that a falling drone cannot tunnel through it in one 240 Hz step
HF_BASE = 0.02  # height-field base thickness (m) under sloped roofs


@dataclass(frozen=True, init=False)
class Prim:
    """One primitive: ``shape`` "box" (half extents) or "cylinder" (radius, half height, 0).

    ``quat`` (w, x, y, z) rotates about the centre ``pos``. ``role`` is "building", "slab",
    "parapet" or "clutter"; ``kind`` names the object; ``roof`` the roof it stands on
    (-1: the ground); ``group`` the clutter group (-1: none).
    """

    shape: str
    pos: tuple[float, float, float]
    size: tuple[float, float, float]
    role: str
    kind: str
    roof: int = -1
    group: int = -1
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)

    def __init__(
        self,
        shape: str,
        pos: tuple[float, float, float],
        size: tuple[float, float, float],
        role: str,
        kind: str,
        roof: int = -1,
        group: int = -1,
        quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0),
    ):
        # the generated frozen __init__ sets each field through object.__setattr__: a city
        # makes ~200 prims per episode, and writing the instance dict is 2x faster (same
        # fields, same values; eq, hash, repr and replace() are the dataclass ones)
        d = self.__dict__
        d["shape"], d["pos"], d["size"], d["role"] = shape, pos, size, role
        d["kind"], d["roof"], d["group"], d["quat"] = kind, roof, group, quat

    def corners(self) -> np.ndarray:
        """(8, 3) corners of the box (of the bounding box for a cylinder), world frame."""
        hx, hy, hz = (
            self.size if self.shape == "box" else (self.size[0], self.size[0], self.size[1])
        )
        c = np.array(
            [[sx * hx, sy * hy, sz * hz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]
        )
        return c @ quat_to_mat(self.quat).T + np.asarray(self.pos)

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        if self.quat == (1.0, 0.0, 0.0, 0.0):
            p = np.asarray(self.pos)
            h = np.asarray(self.size if self.shape == "box" else (self.size[0], *self.size[:2]))
            return p - h, p + h
        c = self.corners()
        return c.min(0), c.max(0)


@dataclass(frozen=True)
class Roof:
    """One landing surface: a roof part with footprint ``rect`` = (x0, y0, x1, y1).

    ``z`` is the flat roof top, or the eave height of a sloped roof (height field from ``z``
    to ``z + rise``). ``slope_deg``/``axis``: shed roofs rise toward ``axis`` (0 +x, 1 +y,
    2 -x, 3 -y); gable roofs have their ridge along x (axis 0) or y (axis 1); hip roofs rise
    from every edge. ``hole`` is the footprint of a higher volume standing on this roof
    (stepped buildings), ``parapet`` its height (0: none) and ``parapet_t`` its thickness.
    """

    id: int
    building: int
    kind: str  # "flat" | "shed" | "gable" | "hip"
    rect: tuple[float, float, float, float]
    z: float
    slope_deg: float = 0.0
    axis: int = 0
    hole: tuple[float, float, float, float] | None = None
    parapet: float = 0.0
    parapet_t: float = 0.0

    @property
    def sloped(self) -> bool:
        return self.kind != "flat"

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.rect
        a = (x1 - x0) * (y1 - y0)
        if self.hole is not None:
            hx0, hy0, hx1, hy1 = self.hole
            a -= (hx1 - hx0) * (hy1 - hy0)
        return a

    @property
    def rise(self) -> float:
        """Height of the highest roof point above ``z`` (0 for flat roofs)."""
        if not self.sloped:
            return 0.0
        x0, y0, x1, y1 = self.rect
        t = math.tan(math.radians(self.slope_deg))
        w, d = x1 - x0, y1 - y0
        if self.kind == "shed":
            return t * (w if self.axis in (0, 2) else d)
        if self.kind == "gable":
            return t * (d if self.axis == 0 else w) / 2.0
        return t * min(w, d) / 2.0  # hip

    def surface(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Roof height and face index (0..3) at points inside ``rect`` (vectorized).

        The edge distances are taken on the inputs as given and only the results are
        broadcast, so a grid passed as a row and a column costs two vectors, not four grids.
        """
        x, y = np.asarray(x, float), np.asarray(y, float)
        shape = np.broadcast_shapes(x.shape, y.shape)
        if not self.sloped:
            return np.full(shape, self.z), np.zeros(shape, np.int32)
        x0, y0, x1, y1 = self.rect
        t = math.tan(math.radians(self.slope_deg))
        if self.kind == "shed":
            u = self._shed_u(x, y)
            return np.broadcast_to(self.z + t * u, shape).copy(), np.zeros(shape, np.int32)
        if self.kind == "gable":
            # ridge along x: faces rise from the -y and +y edges; along y: from -x and +x
            lo, hi, f_lo, f_hi = (
                (y - y0, y1 - y, 1, 3) if self.axis == 0 else (x - x0, x1 - x, 0, 2)
            )
            m = np.minimum(lo, hi)  # argmin picks the first side on ties: lo
            face = np.where(lo <= hi, f_lo, f_hi).astype(np.int32)
            z = self.z + t * m
            return np.broadcast_to(z, shape).copy(), np.broadcast_to(face, shape).copy()
        # hip: nearest edge of -x, -y, +x, +y (the first one on ties, as argmin)
        d0, d1, d2, d3 = x - x0, y - y0, x1 - x, y1 - y
        m = np.broadcast_to(np.minimum(np.minimum(d0, d2), np.minimum(d1, d3)), shape)
        face = np.where(d0 == m, 0, np.where(d1 == m, 1, np.where(d2 == m, 2, 3)))
        return self.z + t * m, face.astype(np.int32)

    def _shed_u(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Horizontal distance from a shed roof's low edge."""
        x0, y0, x1, y1 = self.rect
        a = self.axis
        return x - x0 if a == 0 else y - y0 if a == 1 else x1 - x if a == 2 else y1 - y


@dataclass(frozen=True)
class City:
    """A generated block: ``bounds`` (x0, y0, x1, y1) of the block, roofs and primitives."""

    seed: int
    bounds: tuple[float, float, float, float]
    roofs: tuple[Roof, ...]
    prims: tuple[Prim, ...]
    clutter_density: float
    params: CityParams = field(repr=False, default=None)  # type: ignore[assignment]

    @cached_property
    def top(self) -> float:
        """Highest point of the block (m)."""
        zs = [r.z + r.rise for r in self.roofs]
        if self.prims:
            zs.append(float(self.arrays["hi"][:, 2].max()))
        return float(max(zs)) if zs else 0.0

    @cached_property
    def arrays(self) -> dict[str, np.ndarray]:
        """Prims as arrays: pos, size, quat, half (AABB half extents), lo, hi, cyl (bool)."""
        n = len(self.prims)
        pos = np.array([p.pos for p in self.prims], float).reshape(n, 3)
        size = np.array([p.size for p in self.prims], float).reshape(n, 3)
        quat = np.array([p.quat for p in self.prims], float).reshape(n, 4)
        cyl = np.array([p.shape == "cylinder" for p in self.prims], bool)
        local = np.where(cyl[:, None], size[:, [0, 0, 1]], size)
        w, x, y, z = quat.T
        rot = np.stack(
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
             2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
             2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], axis=1,
        ).reshape(n, 3, 3)  # fmt: skip
        half = np.einsum("nij,nj->ni", np.abs(rot), local)
        return {"pos": pos, "size": size, "quat": quat, "cyl": cyl, "half": half,
                "lo": pos - half, "hi": pos + half}  # fmt: skip

    def count(self, shape: str) -> int:
        return sum(p.shape == shape for p in self.prims)

    @property
    def n_sloped(self) -> int:
        return sum(r.sloped for r in self.roofs)

    def without_groups(self, groups: set[int]) -> City:
        """The same city with the given clutter groups removed."""
        keep = tuple(p for p in self.prims if p.group not in groups or p.group < 0)
        return replace(self, prims=keep)


@dataclass(frozen=True)
class CityParams:
    """Knobs of the generator (metres, degrees). ``clutter_density`` 0 = empty roofs, 1 = crowded.

    ``max_boxes``/``max_cylinders``/``max_sloped`` bound what a block may use so a fixed
    primitive pool can show it (clutter that does not fit is dropped, extra sloped roofs become
    flat).
    """

    block_size: tuple[float, float] = (34.0, 46.0)
    min_lot: float = 9.0
    max_lot: float = 20.0
    lot_inset: tuple[float, float] = (0.0, 1.5)
    storey: float = 3.2
    storeys: tuple[int, int] = (3, 7)
    roof_probs: tuple[float, float, float, float, float] = (0.55, 0.17, 0.12, 0.08, 0.08)
    shallow_prob: float = 0.4  # share of sloped roofs that are landable (<= shallow_max)
    shallow_deg: tuple[float, float] = (3.0, 12.0)
    steep_deg: tuple[float, float] = (20.0, 38.0)
    parapet_prob: float = 0.7
    parapet_h: tuple[float, float] = (0.3, 1.1)
    parapet_t: tuple[float, float] = (0.2, 0.35)
    clutter_density: float = 0.6
    group_area: float = 28.0  # m^2 of roof per clutter group at density 1
    stair_prob: float = 0.9  # x density, on roofs >= 30 m^2
    max_boxes: int = 200
    max_cylinders: int = 48
    max_sloped: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.clutter_density <= 1.0:
            raise ValueError(f"clutter_density must be in [0, 1], got {self.clutter_density!r}")
        if (
            len(self.roof_probs) != len(ROOF_KINDS)
            or min(self.roof_probs) < 0
            or not sum(self.roof_probs) > 0
        ):
            raise ValueError(
                f"roof_probs needs {len(ROOF_KINDS)} non-negative weights (not all 0) for "
                f"{ROOF_KINDS}, "
                f"got {self.roof_probs!r}"
            )
        if self.min_lot <= 2.0 or self.max_lot < 2 * self.min_lot:
            raise ValueError(
                f"need min_lot > 2 m and max_lot >= 2*min_lot, got {self.min_lot}, {self.max_lot}"
            )
        if self.block_size[0] < self.min_lot or self.block_size[0] > self.block_size[1]:
            raise ValueError(f"block_size must be (low, high) >= min_lot, got {self.block_size!r}")


# ---------------------------------------------------------------------------------------------
# small geometry helpers


def quat_mul(a: tuple[float, ...], b: tuple[float, ...]) -> tuple[float, float, float, float]:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    )


def quat_to_mat(q: tuple[float, ...]) -> np.ndarray:
    w, x, y, z = q
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _axis_quat(axis: int, angle: float) -> tuple[float, float, float, float]:
    s = math.sin(angle / 2)
    v = [0.0, 0.0, 0.0]
    v[axis] = s
    return (math.cos(angle / 2), *v)


def _box(cx, cy, z0, hx, hy, hz, role, kind, roof=-1, group=-1, quat=(1.0, 0, 0, 0)) -> Prim:
    """Upright box with its bottom at ``z0``."""
    return Prim("box", (cx, cy, z0 + hz), (hx, hy, hz), role, kind, roof, group, quat)


def _rects_overlap(a, b, gap: float = 0.0) -> bool:
    return not (
        a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]
    )


# ---------------------------------------------------------------------------------------------
# clutter groups: each builds prims in a local frame (footprint [0, w] x [0, d], roof at z=0)


@dataclass
class _Group:
    w: float
    d: float
    prims: list[Prim]  # local frame
    kind: str


def _g_ac_row(rng: np.random.Generator) -> _Group:
    n = int(rng.integers(2, 7))
    a, b, c = rng.uniform(0.9, 1.7), rng.uniform(0.8, 1.3), rng.uniform(0.7, 1.5)
    gap = rng.uniform(0.3, 0.9)
    rows = 2 if rng.random() < 0.3 else 1
    row_gap = rng.uniform(0.8, 1.4)
    ps = [
        _box(a / 2 + i * (a + gap), b / 2 + r * (b + row_gap), 0.0, a / 2, b / 2, c / 2,
             "clutter", "ac_unit")
        for r in range(rows) for i in range(n)
    ]  # fmt: skip
    return _Group(n * a + (n - 1) * gap, rows * b + (rows - 1) * row_gap, ps, "ac_row")


def _g_vent_row(rng: np.random.Generator) -> _Group:
    n = int(rng.integers(2, 7))
    r = rng.uniform(0.1, 0.3)
    sp = rng.uniform(2 * r + 0.3, 2 * r + 1.2)
    ps = []
    for i in range(n):
        h = rng.uniform(0.3, 1.2)
        ps.append(Prim("cylinder", (r + i * sp, r, h / 2), (r, h / 2, 0.0), "clutter", "vent"))
    return _Group(2 * r + (n - 1) * sp, 2 * r, ps, "vent_row")


def _g_skylight_row(rng: np.random.Generator) -> _Group:
    n = int(rng.integers(1, 5))
    a, b, c = rng.uniform(1.0, 2.2), rng.uniform(0.8, 1.6), rng.uniform(0.15, 0.5)
    gap = rng.uniform(0.6, 1.5)
    ps = [
        _box(a / 2 + i * (a + gap), b / 2, 0.0, a / 2, b / 2, c / 2, "clutter", "skylight")
        for i in range(n)
    ]
    return _Group(n * a + (n - 1) * gap, b, ps, "skylight_row")


def _g_water_tank(rng: np.random.Generator) -> _Group:
    r = rng.uniform(1.0, 2.0)
    h = rng.uniform(2.0, 3.5)
    leg = rng.uniform(1.5, 3.5)
    lw = 0.1  # leg half width
    ps = [
        _box(r + sx * 0.6 * r, r + sy * 0.6 * r, 0.0, lw, lw, leg / 2, "clutter", "tank_leg")
        for sx in (-1, 1)
        for sy in (-1, 1)
    ]
    ps.append(Prim("cylinder", (r, r, leg + h / 2), (r, h / 2, 0.0), "clutter", "water_tank"))
    return _Group(2 * r, 2 * r, ps, "water_tank")


def _g_antenna(rng: np.random.Generator) -> _Group:
    n = int(rng.integers(1, 4))
    b = 0.25  # base plate half width
    bh = 0.15
    sp = rng.uniform(0.8, 1.6)
    ps = []
    for i in range(n):
        cx = b + i * (2 * b + sp)
        ps.append(_box(cx, b, 0.0, b, b, bh / 2, "clutter", "antenna_base"))
        r, h = rng.uniform(0.03, 0.07), rng.uniform(2.0, 6.0)
        ps.append(Prim("cylinder", (cx, b, bh + h / 2), (r, h / 2, 0.0), "clutter", "antenna"))
    return _Group(2 * b * n + (n - 1) * sp, 2 * b, ps, "antenna")


def _g_solar_array(rng: np.random.Generator) -> _Group:
    """Rows of tilted panels: low edge on the roof, back edge on a rail; rows face -y."""
    n = int(rng.integers(1, 5))
    length = rng.uniform(3.0, 8.0)
    p = rng.uniform(1.0, 1.8)  # panel depth along the slope
    a = math.radians(rng.uniform(10.0, 30.0))
    t = 0.05
    gap = rng.uniform(0.6, 1.2)
    ca, sa = math.cos(a), math.sin(a)
    depth = p * ca + t * sa  # footprint depth of one row
    q = _axis_quat(0, a)  # +y tilts up
    ps = []
    for i in range(n):
        y_edge = i * (depth + gap) + t * sa  # bottom-front edge (y) of the panel, z = 0
        c = np.array([length / 2, y_edge, 0.0]) + (p / 2) * np.array([0, ca, sa])
        c += (t / 2) * np.array([0.0, -sa, ca])
        ps.append(Prim("box", tuple(c), (length / 2, p / 2, t / 2), "clutter", "solar_panel",
                       quat=q))  # fmt: skip
        # rail under the back edge: its front-top edge touches the panel's underside
        ys1 = y_edge + p * ca - 0.02
        ys0 = ys1 - 0.12
        zs = (ys0 - y_edge) * math.tan(a)
        ps.append(_box(length / 2, (ys0 + ys1) / 2, 0.0, length / 2 - 0.05, 0.06, zs / 2,
                       "clutter", "solar_rail"))  # fmt: skip
    return _Group(length, n * depth + (n - 1) * gap, ps, "solar_array")


def _g_stair(rng: np.random.Generator) -> _Group:
    a, b = rng.uniform(2.4, 4.0), rng.uniform(2.0, 3.0)
    h = rng.uniform(2.4, 3.2)
    return _Group(a, b, [_box(a / 2, b / 2, 0.0, a / 2, b / 2, h / 2, "clutter", "stair_entrance")],
                  "stair_entrance")  # fmt: skip


_BUILDERS = {
    "ac_row": _g_ac_row,
    "vent_row": _g_vent_row,
    "skylight_row": _g_skylight_row,
    "solar_array": _g_solar_array,
    "water_tank": _g_water_tank,
    "antenna": _g_antenna,
}
_GROUP_WEIGHTS = np.array([0.25, 0.2, 0.15, 0.15, 0.1, 0.15])
_GROUP_P = _GROUP_WEIGHTS / _GROUP_WEIGHTS.sum()


def _choice(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """``rng.choice(len(p), size=n, p=p)`` without its per-call argument checks (40 us, the
    generator's largest single cost): numpy's own algorithm, the normalized CDF searched with
    ``n`` uniforms, so the same draws and results (``p`` is valid by construction here)."""
    cdf = p.cumsum()
    cdf /= cdf[-1]
    return cdf.searchsorted(rng.random(n), side="right")


_ZQ = _axis_quat(2, math.pi / 2)


def _place_group(g: _Group, x: float, y: float, z: float, rot: bool, roof: int, gid: int):
    """Local group prims -> world prims at footprint corner (x, y) on roof height z."""
    out = []
    for p in g.prims:
        px, py, pz = p.pos
        if rot:  # 90 deg about z, then shift so the footprint stays [0, d] x [0, w]
            px, py = g.d - py, px
            quat = quat_mul(_ZQ, p.quat)
        else:
            quat = p.quat
        out.append(Prim(p.shape, (x + px, y + py, z + pz), p.size, p.role, p.kind, roof, gid, quat))
    return out


# ---------------------------------------------------------------------------------------------
# generator


def _split_lots(rect, rng, p: CityParams, out: list) -> None:
    x0, y0, x1, y1 = rect
    w, d = x1 - x0, y1 - y0
    big = max(w, d)
    if big < 2 * p.min_lot or (big <= p.max_lot and rng.random() < 0.5):
        out.append(rect)
        return
    if w >= d:
        s = x0 + rng.uniform(max(0.35 * w, p.min_lot), min(0.65 * w, w - p.min_lot))
        _split_lots((x0, y0, s, y1), rng, p, out)
        _split_lots((s, y0, x1, y1), rng, p, out)
    else:
        s = y0 + rng.uniform(max(0.35 * d, p.min_lot), min(0.65 * d, d - p.min_lot))
        _split_lots((x0, y0, x1, s), rng, p, out)
        _split_lots((x0, s, x1, y1), rng, p, out)


def _parapet_prims(roof: Roof, z: float) -> list[Prim]:
    """Parapet walls along the roof edges, cut where a flush higher volume (hole) stands."""
    if roof.parapet <= 0:
        return []
    x0, y0, x1, y1 = roof.rect
    t, h = roof.parapet_t, roof.parapet
    hole = roof.hole
    segs = []  # (xa, ya, xb, yb) rectangles of wall
    for yy0, yy1, edge in ((y0, y0 + t, y0), (y1 - t, y1, y1)):  # x-running walls (full length)
        spans = [(x0, x1)]
        if hole is not None and (abs(hole[1] - edge) < 1e-9 or abs(hole[3] - edge) < 1e-9):
            spans = [(x0, hole[0]), (hole[2], x1)]
        segs += [(a, yy0, b, yy1) for a, b in spans]
    for xx0, xx1, edge in ((x0, x0 + t, x0), (x1 - t, x1, x1)):  # y-running walls
        spans = [(y0 + t, y1 - t)]
        if hole is not None and (abs(hole[0] - edge) < 1e-9 or abs(hole[2] - edge) < 1e-9):
            spans = [(y0 + t, hole[1]), (hole[3], y1 - t)]
        segs += [(xx0, a, xx1, b) for a, b in spans]
    out = []
    for a, b, c, d in segs:
        if c - a > 0.05 and d - b > 0.05:
            out.append(_box((a + c) / 2, (b + d) / 2, z, (c - a) / 2, (d - b) / 2, h / 2,
                            "parapet", "parapet", roof.id))  # fmt: skip
    return out


def _inner(roof: Roof) -> tuple[float, float, float, float]:
    m = roof.parapet_t + 0.15 if roof.parapet > 0 else 0.3
    x0, y0, x1, y1 = roof.rect
    return (x0 + m, y0 + m, x1 - m, y1 - m)


def _place_clutter(roof: Roof, rng: np.random.Generator, p: CityParams, gid0: int,
                   budget: dict) -> list[Prim]:  # fmt: skip
    """Pack clutter groups on a flat roof: stair entrance first, then random groups."""
    ix0, iy0, ix1, iy1 = _inner(roof)
    if ix1 - ix0 < 1.0 or iy1 - iy0 < 1.0:
        return []
    taken: list[tuple[float, float, float, float]] = []
    if roof.hole is not None:
        taken.append(roof.hole)
    prims: list[Prim] = []
    dens = p.clutter_density
    groups: list[_Group] = []
    if roof.area >= 30.0 and rng.random() < p.stair_prob * dens:
        groups.append(_g_stair(rng))
    n = int(rng.poisson(dens * roof.area / p.group_area)) if dens > 0 else 0
    kinds = _choice(rng, _GROUP_P, n)
    groups += [_BUILDERS[_GROUPS[k]](rng) for k in kinds]
    gid = gid0
    left = budget["kind"]
    for g in groups:
        nb = 0
        kinds: dict[str, int] = {}  # prims per kind (a Counter costs several times more)
        for q in g.prims:
            nb += q.shape == "box"
            kinds[q.kind] = kinds.get(q.kind, 0) + 1
        nc = len(g.prims) - nb
        if (
            nb > budget["box"]
            or nc > budget["cylinder"]
            or any(n > left[k] for k, n in kinds.items())
        ):
            continue
        u = rng.random((12, 6)).tolist()  # one draw per group: scalar rng calls are slow
        for k in range(12):
            uk = u[k]
            rot = uk[0] < 0.5
            w, d = (g.d, g.w) if rot else (g.w, g.d)
            if w > ix1 - ix0 or d > iy1 - iy0:
                continue
            x = ix0 + uk[1] * (ix1 - ix0 - w)
            y = iy0 + uk[2] * (iy1 - iy0 - d)
            if uk[3] < 0.5:  # against an edge: structure like real roofs
                off = uk[4]
                side = int(uk[5] * 4)
                x = [ix0 + off, x, ix1 - w - off, x][side]
                y = [y, iy0 + off, y, iy1 - d - off][side]
                x, y = min(max(x, ix0), ix1 - w), min(max(y, iy0), iy1 - d)
            r = (x, y, x + w, y + d)
            # _rects_overlap(r, o, gap=0.4) for every taken rectangle, inlined
            xr, yr = r[2] + 0.4, r[3] + 0.4
            for o in taken:
                if not (xr <= o[0] or o[2] + 0.4 <= x or yr <= o[1] or o[3] + 0.4 <= y):
                    break
            else:
                taken.append(r)
                prims += _place_group(g, x, y, roof.z, rot, roof.id, gid)
                budget["box"] -= nb
                budget["cylinder"] -= nc
                for kind, n in kinds.items():  # Counter.subtract
                    left[kind] = left[kind] - n
                gid += 1
                break
    return prims


def _flush_solar(roof: Roof, rng: np.random.Generator, gid: int) -> list[Prim]:
    """A solar panel lying flush on a shed or gable face (on the surface, never floating)."""
    x0, y0, x1, y1 = roof.rect
    a = math.radians(roof.slope_deg)
    t = 0.05
    # work in the face's frame: u runs up the slope from the low edge, v along it
    if roof.kind == "shed":
        axis = roof.axis
        run = (x1 - x0) if axis in (0, 2) else (y1 - y0)
        span = (y1 - y0) if axis in (0, 2) else (x1 - x0)
    else:  # gable: use the face that rises from the -y edge (ridge along x) or -x edge
        axis = 1 if roof.axis == 0 else 0
        run = ((y1 - y0) if roof.axis == 0 else (x1 - x0)) / 2
        span = (x1 - x0) if roof.axis == 0 else (y1 - y0)
    lu = min(run / math.cos(a) - 1.2, rng.uniform(1.5, 4.0))
    lv = min(span - 1.2, rng.uniform(2.0, 8.0))
    if lu < 1.0 or lv < 1.0:
        return []
    u0 = rng.uniform(0.4, run / math.cos(a) - lu - 0.4)  # along the slope
    v0 = rng.uniform(0.6, span - lv - 0.6)
    uc, vc = u0 + lu / 2, v0 + lv / 2
    h = uc * math.cos(a)  # horizontal distance from the low edge
    zc = roof.z + uc * math.sin(a) + (t / 2) * math.cos(a)
    dh = -(t / 2) * math.sin(a)  # normal offset, horizontal part (toward the low edge)
    if axis == 0:
        pos, size, q = (x0 + h + dh, y0 + vc, zc), (lu / 2, lv / 2, t / 2), _axis_quat(1, -a)
    elif axis == 2:
        pos, size, q = (x1 - h - dh, y0 + vc, zc), (lu / 2, lv / 2, t / 2), _axis_quat(1, a)
    elif axis == 1:
        pos, size, q = (x0 + vc, y0 + h + dh, zc), (lv / 2, lu / 2, t / 2), _axis_quat(0, a)
    else:
        pos, size, q = (x0 + vc, y1 - h - dh, zc), (lv / 2, lu / 2, t / 2), _axis_quat(0, -a)
    return [Prim("box", pos, size, "clutter", "solar_panel", roof.id, gid, q)]


def generate_city(seed_or_rng: int | np.random.Generator, params: CityParams | None = None,
                  **overrides) -> City:  # fmt: skip
    """Generate one city block. Same seed and params -> same city (bit for bit).

    ``overrides`` replace fields of ``params`` (e.g. ``clutter_density=0.0``).
    """
    p = params or CityParams()
    if overrides:
        p = replace(p, **overrides)
    if isinstance(seed_or_rng, np.random.Generator):
        rng = seed_or_rng
        seed = int(rng.integers(2**31))
        rng = np.random.default_rng(seed)
    else:
        seed = int(seed_or_rng)
        rng = np.random.default_rng(seed)
    bw, bd = rng.uniform(*p.block_size, size=2)
    bounds = (-bw / 2, -bd / 2, bw / 2, bd / 2)
    lots: list = []
    _split_lots(bounds, rng, p, lots)

    kinds = list(_choice(rng, np.divide(p.roof_probs, sum(p.roof_probs)), len(lots)))
    # at least one flat roof, and at most max_sloped sloped ones (pool size)
    areas = [(r[2] - r[0]) * (r[3] - r[1]) for r in lots]
    if all(ROOF_KINDS[k] in ("shed", "gable", "hip") for k in kinds):
        kinds[int(np.argmax(areas))] = 0
    n_sl = 0
    for i, k in enumerate(kinds):
        if ROOF_KINDS[k] in ("shed", "gable", "hip"):
            n_sl += 1
            if n_sl > p.max_sloped:
                kinds[i] = 0

    roofs: list[Roof] = []
    prims: list[Prim] = []
    budget = {"box": p.max_boxes, "cylinder": p.max_cylinders, "kind": Counter(KIND_LIMITS)}
    flat_roofs: list[Roof] = []
    for bi, lot in enumerate(lots):
        ins = rng.uniform(*p.lot_inset, size=4) * (rng.random(4) < 0.7)
        x0, y0, x1, y1 = lot[0] + ins[0], lot[1] + ins[1], lot[2] - ins[2], lot[3] - ins[3]
        h = p.storey * rng.integers(p.storeys[0], p.storeys[1] + 1) + rng.uniform(0.0, 1.0)
        kind = ROOF_KINDS[kinds[bi]]
        has_par = rng.random() < p.parapet_prob
        par_h = rng.uniform(*p.parapet_h) if has_par else 0.0
        par_t = rng.uniform(*p.parapet_t) if has_par else 0.0
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if kind in ("flat", "stepped"):
            prims.append(_box(cx, cy, 0.0, hx, hy, (h - SLAB) / 2, "building", "facade"))
            prims.append(_box(cx, cy, h - SLAB, hx, hy, SLAB / 2, "slab", "roof", len(roofs)))
            hole = None
            if kind == "stepped":
                sb = np.where(rng.random(4) < 0.4, 0.0, rng.uniform(2.0, 5.0, size=4))
                tx0, ty0, tx1, ty1 = x0 + sb[0], y0 + sb[1], x1 - sb[2], y1 - sb[3]
                if sb.sum() > 0 and tx1 - tx0 >= 4.0 and ty1 - ty0 >= 4.0:
                    hole = (tx0, ty0, tx1, ty1)
            lower = Roof(len(roofs), bi, "flat", (x0, y0, x1, y1), h, hole=hole,
                         parapet=par_h, parapet_t=par_t)  # fmt: skip
            roofs.append(lower)
            flat_roofs.append(lower)
            if hole is not None:
                h2 = h + p.storey * rng.integers(1, 4)
                tcx, tcy = (hole[0] + hole[2]) / 2, (hole[1] + hole[3]) / 2
                thx, thy = (hole[2] - hole[0]) / 2, (hole[3] - hole[1]) / 2
                prims.append(_box(tcx, tcy, h, thx, thy, (h2 - h - SLAB) / 2, "building", "facade"))
                prims.append(_box(tcx, tcy, h2 - SLAB, thx, thy, SLAB / 2, "slab", "roof",
                                  len(roofs)))  # fmt: skip
                up = Roof(len(roofs), bi, "flat", hole, h2, parapet=par_h, parapet_t=par_t)
                roofs.append(up)
                flat_roofs.append(up)
        else:
            shallow = rng.random() < p.shallow_prob
            slope = rng.uniform(*(p.shallow_deg if shallow else p.steep_deg))
            axis = int(rng.integers(4 if kind == "shed" else 2))
            if kind == "gable":  # ridge along the longer side, like most houses
                axis = 0 if (x1 - x0) >= (y1 - y0) else 1
            prims.append(_box(cx, cy, 0.0, hx, hy, h / 2, "building", "facade"))
            roofs.append(Roof(len(roofs), bi, kind, (x0, y0, x1, y1), h + HF_BASE, slope, axis))

    gid = 0
    # bigger roofs first so the budget goes where there is room
    for roof in sorted(flat_roofs, key=lambda r: -r.area):
        z = roof.z
        par = _parapet_prims(roof, z)
        if len(par) > min(budget["box"], budget["kind"]["parapet"]):
            roofs[roof.id] = replace(roof, parapet=0.0, parapet_t=0.0)
            continue
        budget["box"] -= len(par)
        budget["kind"]["parapet"] -= len(par)
        prims += par
    for roof in sorted(flat_roofs, key=lambda r: -r.area):
        roof = roofs[roof.id]
        cl = _place_clutter(roof, rng, p, gid, budget)
        gid = max([gid] + [q.group + 1 for q in cl])
        prims += cl
    for roof in roofs:
        if (
            roof.kind in ("shed", "gable")
            and budget["box"] > 0
            and budget["kind"]["solar_panel"] > 0
            and rng.random() < p.clutter_density
        ):
            cl = _flush_solar(roof, rng, gid)
            prims += cl
            budget["box"] -= len(cl)
            budget["kind"]["solar_panel"] -= len(cl)
            gid += len(cl)
    return City(seed, bounds, tuple(roofs), tuple(prims), p.clutter_density, p)


def flat_city(
    roofs: list[tuple[float, float, float, float, float]],
    clutter: list[Prim] = (),
    *,
    kinds: list[str] | None = None,
    slopes: list[float] | None = None,
) -> City:
    """Hand-built city for tests and demos: ``roofs`` = [(x0, y0, x1, y1, z), ...].

    ``kinds``/``slopes`` make a roof sloped ("shed" rising +x, "gable", "hip"); ``clutter`` prims
    are used as given (role "clutter").
    """
    rs, ps = [], []
    for i, (x0, y0, x1, y1, z) in enumerate(roofs):
        kind = kinds[i] if kinds else "flat"
        slope = slopes[i] if slopes else 0.0
        cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
        if kind == "flat":
            ps.append(_box(cx, cy, 0.0, hx, hy, (z - SLAB) / 2, "building", "facade"))
            ps.append(_box(cx, cy, z - SLAB, hx, hy, SLAB / 2, "slab", "roof", i))
            rs.append(Roof(i, i, "flat", (x0, y0, x1, y1), z))
        else:
            ps.append(_box(cx, cy, 0.0, hx, hy, z / 2, "building", "facade"))
            rs.append(Roof(i, i, kind, (x0, y0, x1, y1), z + HF_BASE, slope, 0))
    xs = [r[0] for r in roofs] + [r[2] for r in roofs]
    ys = [r[1] for r in roofs] + [r[3] for r in roofs]
    bounds = (min(xs) - 2, min(ys) - 2, max(xs) + 2, max(ys) + 2)
    cl = tuple(replace(c, group=i) if c.group < 0 else c for i, c in enumerate(clutter))
    return City(0, bounds, tuple(rs), tuple(ps) + cl, 0.0, CityParams())


# ---------------------------------------------------------------------------------------------
# validation (used by the tests and, cheaply, by the env in debug runs)


def _obb_axes(p: Prim) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = quat_to_mat(p.quat)
    h = np.asarray(p.size if p.shape == "box" else (p.size[0], p.size[0], p.size[1]), float)
    return np.asarray(p.pos, float), r, h


def _obb_penetration(a: Prim, b: Prim) -> float:
    """Separating-axis depth of two boxes (cylinders as their bounding boxes); <= 0: apart."""
    ca, ra, ha = _obb_axes(a)
    cb, rb, hb = _obb_axes(b)
    axes = [ra[:, i] for i in range(3)] + [rb[:, i] for i in range(3)]
    axes += [np.cross(ra[:, i], rb[:, j]) for i in range(3) for j in range(3)]
    d = cb - ca
    best = np.inf
    for ax in axes:
        n = np.linalg.norm(ax)
        if n < 1e-9:
            continue
        ax = ax / n
        pa = np.sum(ha * np.abs(ax @ ra))
        pb = np.sum(hb * np.abs(ax @ rb))
        best = min(best, pa + pb - abs(d @ ax))
        if best <= 0:
            return best
    return best


def validate_city(city: City, tol: float = 1e-6) -> list[str]:
    """Problems with a city: interpenetrating clutter, floating clutter, clutter off its roof.

    Returns a list of readable messages (empty = valid). Clutter is checked against all other
    clutter, parapets and building volumes (exact separating-axis test on the pairs whose
    bounding boxes overlap); "floating" means a clutter part's lowest point is neither on its
    roof surface nor on the top of another part of its group.
    """
    errs: list[str] = []
    arr = city.arrays
    lo, hi = arr["lo"], arr["hi"]
    prims = city.prims
    role = np.array([p.role for p in prims])
    group = np.array([p.group for p in prims])
    cl = np.flatnonzero(role == "clutter")
    solid = np.flatnonzero(role != "clutter")
    for others in (cl, solid):
        if not len(cl) or not len(others):
            continue
        over = np.all(lo[cl, None] < hi[None, others] - tol, axis=2) & np.all(
            lo[None, others] < hi[cl, None] - tol, axis=2
        )
        for a, b in zip(*np.nonzero(over)):
            i, j = int(cl[a]), int(others[b])
            if others is cl and j <= i:
                continue
            if _obb_penetration(prims[i], prims[j]) > tol:
                p, q = prims[i], prims[j]
                what = q.kind if q.role == "clutter" else q.role
                errs.append(f"clutter {p.kind}@{p.pos} interpenetrates {what}@{q.pos}")
    for i in cl.tolist():
        p = prims[i]
        roof = city.roofs[p.roof] if 0 <= p.roof < len(city.roofs) else None
        if roof is None:
            errs.append(f"clutter {p.kind}@{p.pos} is not on a roof")
            continue
        x0, y0, x1, y1 = roof.rect
        if lo[i, 0] < x0 - tol or lo[i, 1] < y0 - tol or hi[i, 0] > x1 + tol or hi[i, 1] > y1 + tol:
            errs.append(f"clutter {p.kind}@{p.pos} overhangs roof {roof.id}")
        # support: lowest corners on the roof surface, or on a group-mate's top
        c = p.corners()
        low = c[c[:, 2] <= c[:, 2].min() + 1e-6]
        surf, _ = roof.surface(low[:, 0], low[:, 1])
        on_roof = bool(np.all(np.abs(low[:, 2] - surf) < 1e-5))
        mates = cl[(group[cl] == p.group) & (cl != i)]
        on_mate = bool(np.any(np.abs(hi[mates, 2] - lo[i, 2]) < 1e-5))
        if not (on_roof or on_mate):
            errs.append(f"clutter {p.kind}@{p.pos} floats (bottom {lo[i, 2]:.3f})")
    return errs
