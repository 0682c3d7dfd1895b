"""Gates: MjSpec bodies (square and round frames) and the geometric pass/crash logic.

Gates are non-colliding mocap bodies: MuJoCo never computes contacts for them, so physics
costs nothing per gate. Passing and frame hits are decided geometrically each control step
from the segment the quad's centre travelled, treating the quad as a sphere of radius ``r``:

* the segment crosses the gate plane with the centre at least ``r`` inside the opening ->
  ``PASS`` (or ``WRONG_WAY`` when crossed against the gate normal);
* it crosses with the sphere touching the frame (within ``r`` of the solid ring) -> ``HIT``;
* at the current position the sphere overlaps the frame's slab -> ``HIT`` (side hits);
* otherwise ``NONE`` (a crossing outside the frame is a miss, not a pass).

Each gate body holds both frame shapes (one closed mesh each); the unused one is moved to geom
group 5, which is not rendered, so the shape switches per episode without recompiling.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco

__all__ = [
    "GateGeometry", "NONE", "PASS", "WRONG_WAY", "HIT", "SHAPES", "add_gate", "add_gate_meshes",
    "classify",
]  # fmt: skip

NONE, PASS, WRONG_WAY, HIT = 0, 1, 2, 3
SHAPES = ("square", "round")
HIDDEN_GROUP = 5
ROUND_SEGMENTS = 24


@dataclass(frozen=True)
class GateGeometry:
    """Sizes of a gate: opening (side or diameter), frame width and depth (m)."""

    opening: float = 1.5
    frame: float = 0.2
    depth: float = 0.1

    def __post_init__(self) -> None:
        for f in ("opening", "frame", "depth"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"gate {f} must be a positive length, got {v!r}")

    @property
    def inner(self) -> float:
        """Half side (square) or radius (round) of the opening."""
        return self.opening / 2.0

    @property
    def outer(self) -> float:
        return self.opening / 2.0 + self.frame

    def scaled(self, s: float) -> GateGeometry:
        return GateGeometry(self.opening * s, self.frame * s, self.depth * s)


def _annulus(
    inner: list[tuple[float, float]], outer: list[tuple[float, float]], d: float, repeat: float
) -> tuple[list[float], list[int], list[float], list[int]]:
    """A closed frame mesh between two polygons (same vertex count) in the y-z plane, depth
    2d along x. Returns vertices, faces (outward, counter-clockwise), texture coordinates and
    per-face-vertex texture indices: u runs ``repeat`` times around the ring, v across it."""
    k = len(inner)
    vert: list[float] = []
    for poly, x in ((inner, d), (outer, d), (inner, -d), (outer, -d)):
        for y, z in poly:
            vert += [x, y, z]
    rows = (0.0, 1.0, 0.25)  # inner edge, outer edge, depth of tunnel and rim
    tex: list[float] = []
    for v in rows:
        for i in range(k + 1):
            tex += [repeat * i / k, v]

    def t(i: int, row: int) -> int:
        return row * (k + 1) + i

    IF, OF, IB, OB = 0, k, 2 * k, 3 * k
    face: list[int] = []
    ftex: list[int] = []
    for i in range(k):
        j = (i + 1) % k
        quads = (
            ((IF + i, OF + i, OF + j, IF + j), (t(i, 0), t(i, 1), t(i + 1, 1), t(i + 1, 0))),
            ((IB + i, IB + j, OB + j, OB + i), (t(i, 0), t(i + 1, 0), t(i + 1, 1), t(i, 1))),
            ((OF + i, OB + i, OB + j, OF + j), (t(i, 0), t(i, 2), t(i + 1, 2), t(i + 1, 0))),
            ((IF + i, IF + j, IB + j, IB + i), (t(i, 0), t(i + 1, 0), t(i + 1, 2), t(i, 2))),
        )
        for (a, b, c, e), (ta, tb, tc, te) in quads:
            face += [a, b, c, a, c, e]
            ftex += [ta, tb, tc, ta, tc, te]
    return vert, face, tex, ftex


def _square(half: float, per_side: int) -> list[tuple[float, float]]:
    """Points along a square's perimeter, counter-clockwise from a corner."""
    corners = [(half, half), (-half, half), (-half, -half), (half, -half)]
    pts = []
    for c in range(4):
        (y0, z0), (y1, z1) = corners[c], corners[(c + 1) % 4]
        for i in range(per_side):
            f = i / per_side
            pts.append((y0 + f * (y1 - y0), z0 + f * (z1 - z0)))
    return pts


def add_gate_meshes(
    spec: mujoco.MjSpec, geo: GateGeometry, prefix: str = "gate"
) -> tuple[str, str]:
    """Add the square and round frame meshes once; returns their names."""
    a, o, d = geo.inner, geo.outer, geo.depth / 2.0
    ts = [2 * math.pi * i / ROUND_SEGMENTS for i in range(ROUND_SEGMENTS)]
    shapes = (
        (_square(a, 6), _square(o, 6)),
        ([(a * math.cos(t), a * math.sin(t)) for t in ts],
         [(o * math.cos(t), o * math.sin(t)) for t in ts]),
    )  # fmt: skip
    names = (f"{prefix}_square", f"{prefix}_round")
    for name, (inner, outer) in zip(names, shapes):
        vert, face, tex, ftex = _annulus(inner, outer, d, repeat=4.0)
        mesh = spec.add_mesh(name=name)
        mesh.uservert = vert
        mesh.userface = face
        mesh.usertexcoord = tex
        mesh.userfacetexcoord = ftex
        mesh.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
    return names


def add_gate(
    spec: mujoco.MjSpec,
    name: str,
    meshes: tuple[str, str],
    material: str,
    pos=(0.0, 0.0, -50.0),
) -> tuple[str, str]:
    """A mocap gate body ``name`` with a square and a round frame geom (the round one hidden);
    returns the two geom names. Gate frame: x is the normal (flight direction), y lateral,
    z up. Two geoms per gate keep kinematics cheap (MuJoCo poses every geom each substep)."""
    body = spec.worldbody.add_body(name=name, mocap=True, pos=list(pos))
    out = []
    for shape, mesh, group in zip(SHAPES, meshes, (0, HIDDEN_GROUP)):
        g = f"{name}_{shape}"
        body.add_geom(
            name=g, type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh, material=material,
            contype=0, conaffinity=0, group=group, mass=0.0,
        )  # fmt: skip
        out.append(g)
    return out[0], out[1]


def _band(y: float, z: float, shape_round: bool, inner: float, outer: float, r: float) -> int:
    """Where an in-plane point lies for a sphere of radius r: 1 clear inside, 2 touching, 0 out."""
    if shape_round:
        rho = math.hypot(y, z)
        if rho <= inner - r:
            return 1
        return 2 if rho <= outer + r else 0
    m = max(abs(y), abs(z))
    if m <= inner - r:
        return 1
    # touching the square ring: inside the outer square grown by r
    return 2 if (abs(y) <= outer + r and abs(z) <= outer + r) else 0


def classify(
    prev: tuple[float, float, float],
    cur: tuple[float, float, float],
    shape_round: bool,
    geo: GateGeometry,
    r: float,
) -> int:
    """Classify one control step against one gate, from the quad centre's gate-frame
    coordinates before (``prev``) and after (``cur``) the step. See the module docstring."""
    x0, y0, z0 = prev
    x1, y1, z1 = cur
    half_d = 0.5 * geo.depth
    if (x0 < 0.0) != (x1 < 0.0):  # crossed the plane
        t = x0 / (x0 - x1)
        y, z = y0 + t * (y1 - y0), z0 + t * (z1 - z0)
        band = _band(y, z, shape_round, geo.inner, geo.outer, r)
        if band == 1:
            # still check the end point for a side hit inside the slab
            return PASS if x1 >= 0.0 else WRONG_WAY
        if band == 2:
            return HIT
        return NONE
    if abs(x1) <= half_d + r and _band(y1, z1, shape_round, geo.inner, geo.outer, r) == 2:
        return HIT
    return NONE
