"""Procedural grasp objects: 1-4 primitives and/or random convex hulls, generated from a seed.

Object ``k`` of the library is a pure function of ``k`` (its own ``np.random.Generator``), so
``object_set="train"`` (seeds 0-899) and the held-out ``object_set="test"`` (900-999) are the
same on every machine. Sizes are chosen so the Panda-like gripper (8 cm stroke, ~4.5 cm of
finger below the palm) can close on every object from above: each object has a horizontal
direction along which its whole projection is at most ``MAX_GRASP_WIDTH`` wide, and it rests
upright on a flat bottom at z = 0 of its body frame.

Each object also carries its exact support function (``support``), from which placement
(footprint radius), the scripted expert (narrowest grasp direction, top height) and labels
(oriented bounding boxes) are derived without touching MuJoCo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import mujoco
import numpy as np
from scipy.spatial import ConvexHull

from simenvs.robots.arm import convex_parts_mesh

__all__ = [
    "N_OBJECTS",
    "OBJECT_SETS",
    "MAX_GRASP_WIDTH",
    "Part",
    "GraspObject",
    "object_seeds",
    "make_object",
    "add_object",
    "world_support",
    "visual_mesh",
]

N_OBJECTS = 1000
OBJECT_SETS = {"train": range(0, 900), "test": range(900, 1000)}
MAX_GRASP_WIDTH = 0.055  # m, narrowest projected width (gripper opens to 0.08)
MIN_WIDTH = 0.015  # m
MAX_HEIGHT = 0.11  # m
MAX_LENGTH = 0.12  # m, longest horizontal extent
_SALT = 0x6A5B_0B1E


@dataclass(frozen=True, eq=False)
class Part:
    """One geom of an object, in the object's body frame (MuJoCo size conventions)."""

    kind: str  # box | cylinder | capsule | sphere | ellipsoid | hull
    size: tuple[float, float, float]
    pos: np.ndarray
    rot: np.ndarray  # 3x3 rotation, part frame -> body frame
    vertices: np.ndarray | None = None  # hull vertices in the part frame

    def volume(self) -> float:
        a, b, c = self.size
        if self.kind == "box":
            return 8 * a * b * c
        if self.kind == "cylinder":
            return 2 * np.pi * a * a * b
        if self.kind == "capsule":
            return 2 * np.pi * a * a * b + 4 / 3 * np.pi * a**3
        if self.kind == "sphere":
            return 4 / 3 * np.pi * a**3
        if self.kind == "ellipsoid":
            return 4 / 3 * np.pi * a * b * c
        return float(ConvexHull(self.vertices).volume)

    def support(self, dirs: np.ndarray) -> np.ndarray:
        """max over the part of d·x for each row d of ``dirs`` (body frame)."""
        dl = dirs @ self.rot  # directions in the part frame
        a, b, c = self.size
        if self.kind == "box":
            h = np.abs(dl) @ np.array([a, b, c])
        elif self.kind == "sphere":
            h = a * np.linalg.norm(dl, axis=1)
        elif self.kind == "capsule":
            h = a * np.linalg.norm(dl, axis=1) + b * np.abs(dl[:, 2])
        elif self.kind == "cylinder":
            h = a * np.hypot(dl[:, 0], dl[:, 1]) + b * np.abs(dl[:, 2])
        elif self.kind == "ellipsoid":
            h = np.linalg.norm(dl * np.array([a, b, c]), axis=1)
        else:
            h = (dl @ self.vertices.T).max(axis=1)
        return dirs @ self.pos + h


@dataclass(frozen=True, eq=False)
class GraspObject:
    """A rigid object: parts, total mass, and geometry summaries (body frame, z up)."""

    seed: int
    parts: tuple[Part, ...]
    mass: float
    height: float = field(init=False)
    radius: float = field(init=False)  # horizontal bounding radius about the body origin
    narrow_width: float = field(init=False)

    def __post_init__(self):
        h = self.support(_RING)
        object.__setattr__(self, "height", float(self.support(_UP)[0]))
        object.__setattr__(self, "radius", float(h.max()))
        object.__setattr__(self, "narrow_width", float((h[:36] + h[36:]).min()))

    def support(self, dirs: np.ndarray) -> np.ndarray:
        return _parts_support(self.parts, dirs)

    def part_masses(self) -> np.ndarray:
        v = np.array([p.volume() for p in self.parts])
        return self.mass * v / v.sum()


_ANG = np.linspace(0, 2 * np.pi, 72, endpoint=False)
_RING = np.c_[np.cos(_ANG), np.sin(_ANG), np.zeros_like(_ANG)]  # 72 horizontal directions
_RING.flags.writeable = False
_UP = np.array([[0, 0, 1.0]])
_UP.flags.writeable = False


def _parts_support(parts: Sequence[Part], dirs: np.ndarray) -> np.ndarray:
    """Support function of the union of ``parts`` (``GraspObject.support`` without building
    an object: generation asks it of partial objects, which need no summaries)."""
    dirs = np.atleast_2d(np.asarray(dirs, float))
    return np.max([p.support(dirs) for p in parts], axis=0)


def world_support(obj: GraspObject, pos: np.ndarray, mat: np.ndarray, dirs: np.ndarray):
    """Support function of ``obj`` posed at (``pos``, rotation ``mat``) for world ``dirs``."""
    dirs = np.atleast_2d(np.asarray(dirs, float))
    return dirs @ pos + obj.support(dirs @ np.asarray(mat).reshape(3, 3))


def object_seeds(object_set: str) -> range:
    """The library seeds of ``"train"`` (900) or ``"test"`` (100)."""
    if object_set not in OBJECT_SETS:
        raise ValueError(f"unknown object_set {object_set!r}; allowed: {list(OBJECT_SETS)}")
    return OBJECT_SETS[object_set]


def _rot_z(a: float) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


_ROT_X90 = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # part z -> body -y
_ROT_Y90 = np.array([[0.0, 0, 1.0], [0, 1.0, 0], [-1.0, 0, 0]])  # part z -> body x


def _hull_vertices(rng: np.random.Generator, ax: float, ay: float, hh: float) -> np.ndarray:
    """A random convex prism: a jittered polygon, slightly tapered/sheared top (<= ~15°)."""
    k = int(rng.integers(5, 10))
    ang = (np.arange(k) + rng.uniform(-0.3, 0.3, k)) * (2 * np.pi / k) + rng.uniform(0, np.pi)
    rad = rng.uniform(0.8, 1.0, k)
    poly = np.column_stack((np.cos(ang) * rad * ax, np.sin(ang) * rad * ay))
    scale = rng.uniform(0.8, 1.0)
    shift = rng.uniform(-0.15, 0.15, 2) * np.array([ax, ay]) * (1 - scale + 0.1)
    top = poly * scale + shift
    if rng.random() < 0.4:  # bevelled top: an extra, smaller ring
        mid = np.column_stack((top, np.full(k, hh * 0.6)))
        cap = np.column_stack((top * rng.uniform(0.5, 0.85), np.full(k, hh)))
        rings = [np.column_stack((poly, np.full(k, -hh))), mid, cap]
    else:
        rings = [np.column_stack((poly, np.full(k, -hh))), np.column_stack((top, np.full(k, hh)))]
    return np.concatenate(rings)


def _random_part(
    rng: np.random.Generator, kinds: Sequence[str], half_y: float, half_x: float, half_z: float
) -> Part:
    """A part centred at the origin with extents (<=) half_x, half_y, half_z along body axes."""
    kind = str(rng.choice(kinds))
    eye = np.eye(3)
    zero = np.zeros(3)
    if kind == "box":
        return Part("box", (half_x, half_y, half_z), zero, _rot_z(0.0))
    if kind == "cylinder":  # upright, radius limited by the narrow half-width
        return Part("cylinder", (half_y, half_z, 0.0), zero, eye)
    if kind == "capsule":  # lying along x: radius <= half_y and <= half_z
        r = min(half_y, half_z)
        return Part("capsule", (r, max(half_x - r, 0.002), 0.0), zero, _ROT_Y90)
    if kind == "sphere":
        return Part("sphere", (min(half_y, half_z), 0.0, 0.0), zero, eye)
    if kind == "ellipsoid":
        return Part("ellipsoid", (half_x, half_y, half_z), zero, eye)
    verts = _hull_vertices(rng, half_x, half_y, half_z)
    return Part("hull", (0.0, 0.0, 0.0), zero, eye, verts)


def _moved(p: Part, pos: np.ndarray, yaw: float = 0.0) -> Part:
    rz = _rot_z(yaw)
    return Part(p.kind, p.size, rz @ p.pos + pos, rz @ p.rot, p.vertices)


def _generate(seed: int, rng: np.random.Generator) -> GraspObject:
    n_parts = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.3, 0.25, 0.15]))
    style = rng.choice(["primitives", "hulls", "mixed"], p=[0.4, 0.25, 0.35])
    prims = ["box", "cylinder", "capsule", "ellipsoid", "sphere"]
    kinds = {"primitives": prims, "hulls": ["hull"], "mixed": prims + ["hull"] * 3}[str(style)]
    base_kinds = [k for k in kinds if k != "sphere"] if n_parts > 1 else kinds
    # The base: its narrow half-width along body y bounds the whole object's.
    hy = rng.uniform(0.012, 0.026)
    hx = rng.uniform(hy, min(2.2 * hy, 0.05))
    hz = rng.uniform(0.012, 0.035)
    base = _random_part(rng, base_kinds, hy, hx, hz)
    parts = [_moved(base, np.array([0.0, 0.0, hz]))]
    if base.kind == "ellipsoid":  # flatten the rocking bottom: keep it oblate
        a, b, c = base.size
        parts[0] = _moved(
            Part("ellipsoid", (a, b, min(c, 0.7 * b)), np.zeros(3), np.eye(3)),
            np.array([0.0, 0.0, min(c, 0.7 * b)]),
        )
    for _ in range(n_parts - 1):
        cur = tuple(parts)  # the object so far: only its support is needed
        py = rng.uniform(0.01, 0.025)
        px = rng.uniform(py, 0.04)
        pz = rng.uniform(0.01, 0.025)
        part = _random_part(rng, kinds, py, px, pz)
        yaw = rng.uniform(-0.3, 0.3)
        if rng.random() < 0.55:  # stack on top, overlapping a little
            x = rng.uniform(-0.5, 0.5) * _parts_support(cur, np.array([[1.0, 0, 0]]))[0]
            z = float(_parts_support(cur, _UP)[0]) + pz * rng.uniform(0.3, 0.9)
            parts.append(_moved(part, np.array([x, 0.0, z]), yaw))
        else:  # attach at one end along x, resting on the table plane
            side = 1.0 if rng.random() < 0.5 else -1.0
            end = _parts_support(cur, np.array([[side, 0, 0]]))[0]
            x = side * (end + px * rng.uniform(-0.6, 0.2))
            parts.append(_moved(part, np.array([x, 0.0, pz]), yaw))
    return _finish(seed, parts, rng)


def _finish(seed: int, parts: list[Part], rng: np.random.Generator) -> GraspObject:
    # Recentre: footprint centre at the origin, bottom at z = 0.
    ex = _parts_support(
        parts, np.array([[1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    )
    shift = np.array([(ex[1] - ex[0]) / 2, (ex[3] - ex[2]) / 2, ex[4]])
    parts = [Part(p.kind, p.size, p.pos + shift, p.rot, p.vertices) for p in parts]
    mass = float(np.exp(rng.uniform(np.log(0.05), np.log(0.4))))
    return GraspObject(seed, tuple(parts), mass)


def _acceptable(obj: GraspObject) -> bool:
    length = 2 * obj.radius
    return (
        MIN_WIDTH <= obj.narrow_width <= MAX_GRASP_WIDTH
        and obj.height <= MAX_HEIGHT
        and length <= MAX_LENGTH
    )


def _part_vertices(p: Part, sides: int = 10) -> np.ndarray:
    """Low-poly vertices (on the surface) of one convex part, in the object's body frame."""
    a, b, c = p.size
    ang = np.arange(sides) * (2 * np.pi / sides)
    ring = np.column_stack((np.cos(ang), np.sin(ang)))
    if p.kind == "box":
        v = np.array([[x, y, z] for x in (-a, a) for y in (-b, b) for z in (-c, c)])
    elif p.kind == "cylinder":
        v = np.concatenate([np.column_stack((ring * a, np.full(sides, z))) for z in (-b, b)])
    elif p.kind == "capsule":
        rings = [np.column_stack((ring * a, np.full(sides, z))) for z in (-b, b)]
        rings += [
            np.column_stack((ring * a * 0.7, np.full(sides, z * (b + 0.7 * a)))) for z in (-1, 1)
        ]
        v = np.concatenate(rings + [np.array([[0, 0, b + a], [0, 0, -b - a]])])
    elif p.kind in ("sphere", "ellipsoid"):
        lat = np.array([-0.6, 0.0, 0.6]) * (np.pi / 2)
        unit = [np.column_stack((ring * np.cos(t), np.full(sides, np.sin(t)))) for t in lat]
        unit = np.concatenate(unit + [np.array([[0, 0, 1.0], [0, 0, -1.0]])])
        v = unit * (np.array([a, a, a]) if p.kind == "sphere" else np.array([a, b, c]))
    else:
        v = p.vertices
    return v @ p.rot.T + p.pos


@lru_cache(maxsize=N_OBJECTS)
def visual_mesh(obj: GraspObject) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, triangles) drawing the whole object as one mesh: llvmpipe pays ~10 us per
    geom drawn, and a tessellated primitive draws more triangles than these low-poly parts."""
    return convex_parts_mesh([_part_vertices(p) for p in obj.parts])


@lru_cache(maxsize=N_OBJECTS)
def make_object(seed: int) -> GraspObject:
    """Library object ``seed`` (0 <= seed < 1000); deterministic, cached."""
    if not 0 <= int(seed) < N_OBJECTS:
        raise ValueError(f"object seed must be in [0, {N_OBJECTS}), got {seed!r}")
    rng = np.random.default_rng([_SALT, int(seed)])
    for _ in range(50):
        obj = _generate(int(seed), rng)
        if _acceptable(obj):
            return obj
    raise RuntimeError(f"object {seed}: no acceptable shape in 50 draws")  # pragma: no cover


@lru_cache(maxsize=N_OBJECTS)
def _part_masses(obj: GraspObject) -> tuple[float, ...]:
    """Cached per library object (a hull part's volume is a ConvexHull: ~0.3 ms a reset)."""
    return tuple(obj.part_masses().tolist())


_GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
    "hull": mujoco.mjtGeom.mjGEOM_MESH,
}


@lru_cache(maxsize=N_OBJECTS)
def _spec_plan(obj: GraspObject) -> tuple[tuple, list[float], list[int]]:
    """What ``add_object`` writes into a spec, as plain Python values, cached per library
    object: per part (type, pos, quat, mass, size or None, hull vertices or None), then the
    visual mesh's vertices and faces (the scene is rebuilt every reset)."""
    quat = np.empty(4)
    parts = []
    for part, m in zip(obj.parts, _part_masses(obj)):
        mujoco.mju_mat2Quat(quat, part.rot.ravel())
        hull = part.kind == "hull"
        parts.append(
            (
                _GEOM_TYPES[part.kind],
                part.pos.tolist(),
                quat.tolist(),
                float(m),
                None if hull else list(part.size),
                part.vertices.ravel().tolist() if hull else None,
            )
        )
    verts, faces = visual_mesh(obj)
    return tuple(parts), verts.ravel().tolist(), faces.ravel().tolist()


def add_object(
    spec: mujoco.MjSpec,
    obj: GraspObject,
    name: str,
    pos: Sequence[float] = (0.0, 0.0, 0.0),
    material: str = "",
    friction: float = 1.0,
    contype: int = 1,
    conaffinity: int = 3,
) -> mujoco.MjsBody:
    """Add ``obj`` as a free body ``name`` with collision geoms ``<name>_g<i>`` (hull
    meshes ``<name>_m<i>``, hidden group 3), each with its share of the mass by volume, and
    one massless visual mesh ``<name>_vis`` (group 0) carrying ``material``."""
    body = spec.worldbody.add_body(name=name, pos=list(pos))
    body.add_freejoint(name=name)
    parts, verts, faces = _spec_plan(obj)
    for i, (gtype, ppos, quat, m, size, hull) in enumerate(parts):
        g = body.add_geom(
            name=f"{name}_g{i}",
            type=gtype,
            pos=ppos,
            quat=quat,
            mass=m,
            condim=4,
            friction=[friction, 0.005, 0.0001],
            contype=contype,
            conaffinity=conaffinity,
            group=3,
        )
        if hull is not None:
            spec.add_mesh(name=f"{name}_m{i}", uservert=hull)
            g.meshname = f"{name}_m{i}"
        else:
            g.size = size
    spec.add_mesh(name=f"{name}_vis", uservert=verts, userface=faces)
    vis = body.add_geom(
        name=f"{name}_vis",
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname=f"{name}_vis",
        contype=0,
        conaffinity=0,
        group=0,
        density=0.0,
    )
    if material:
        vis.material = material
    return body
