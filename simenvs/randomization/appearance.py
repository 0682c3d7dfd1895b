"""Appearance modders: parameters derived from a compiled model, applied in place.

Textures are regenerated lazily (``TextureBank.refresh`` before a render), so episodes that
never render pay nothing for them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import mujoco
import numpy as np

from simenvs.core.scene import COLOR_PREFIX, DISTRACTOR_PREFIX, DISTRACTOR_REGION, TEXTURE_PREFIX
from simenvs.randomization.params import ParamDef
from simenvs.randomization.textures import PATTERNS, make_texture

__all__ = ["appearance_param_defs", "appearance_key", "TextureBank", "Distractors", "SHAPES"]

SHAPES = ("box", "sphere", "capsule", "cylinder", "ellipsoid")
_SHAPE_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
    "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID,
}
_HIDDEN_GROUP = mujoco.mjNGROUP - 1  # not drawn by default (MjvOption shows groups 0-2)


def _names(model: mujoco.MjModel, objtype: mujoco.mjtObj, n: int) -> list[str]:
    return [mujoco.mj_id2name(model, objtype, i) or "" for i in range(n)]


def texture_slots(model: mujoco.MjModel) -> dict[str, int]:
    """``slot -> texture id`` for every ``rt_<slot>`` texture."""
    return {
        n[len(TEXTURE_PREFIX) :]: i
        for i, n in enumerate(_names(model, mujoco.mjtObj.mjOBJ_TEXTURE, model.ntex))
        if n.startswith(TEXTURE_PREFIX)
    }


def appearance_key(model: mujoco.MjModel, cameras: Sequence[str] = ()) -> tuple:
    """Everything ``appearance_param_defs`` reads from ``model``: names (hence ids) of the
    textures, materials, lights and distractor bodies, the cameras' ids, and the nominal
    values the definitions capture. Equal keys give equal definitions, so a task that
    recompiles the same scene around new objects reuses them (~3 ms of ``ParamDef``
    construction per reset, ~0.1 ms for the key)."""
    m = model
    cids = tuple(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, c) for c in cameras)
    cam = [i for i in cids if i >= 0]
    return (
        tuple(cameras),
        cids,
        tuple(_names(m, mujoco.mjtObj.mjOBJ_TEXTURE, m.ntex)),
        tuple(_names(m, mujoco.mjtObj.mjOBJ_MATERIAL, m.nmat)),
        tuple(_names(m, mujoco.mjtObj.mjOBJ_LIGHT, m.nlight)),
        sum(
            1
            for x in _names(m, mujoco.mjtObj.mjOBJ_BODY, m.nbody)
            if x.startswith(DISTRACTOR_PREFIX)
        ),
        m.mat_rgba.tobytes(),
        m.light_pos.tobytes(),
        m.light_dir.tobytes(),
        m.light_diffuse.tobytes(),
        m.light_ambient.tobytes(),
        np.asarray(m.vis.headlight.ambient).tobytes(),
        np.asarray(m.vis.headlight.diffuse).tobytes(),
        m.cam_pos[cam].tobytes(),
        m.cam_quat[cam].tobytes(),
        m.cam_fovy[cam].tobytes(),
    )


def appearance_param_defs(model: mujoco.MjModel, cameras: Sequence[str] = ()) -> list[ParamDef]:
    defs: list[ParamDef] = []
    for slot in texture_slots(model):
        p = f"appearance.tex.{slot}"
        defs += [
            ParamDef(f"{p}.pattern", "nominal", choices=("nominal", *PATTERNS),
                     doc="procedural pattern; 'nominal' keeps the compiled pixels"),
            ParamDef(f"{p}.color1", np.full(3, 0.6), 0.0, 1.0, shape=(3,), unit="rgb"),
            ParamDef(f"{p}.color2", np.full(3, 0.4), 0.0, 1.0, shape=(3,), unit="rgb"),
            ParamDef(f"{p}.scale", 4.0, 1.0, 32.0, unit="features", doc="pattern frequency"),
            ParamDef(f"{p}.seed", 0, 0, 2**31 - 1, dtype=int, doc="seed of random patterns"),
        ]  # fmt: skip
    mat_names = _names(model, mujoco.mjtObj.mjOBJ_MATERIAL, model.nmat)
    for mid, n in enumerate(mat_names):
        if n.startswith(COLOR_PREFIX):
            defs.append(
                ParamDef(
                    f"appearance.color.{n[len(COLOR_PREFIX) :]}",
                    model.mat_rgba[mid, :3].copy(),
                    0.0,
                    1.0,
                    shape=(3,),
                    unit="rgb",
                    apply=_set_row("mat_rgba", mid, slice(0, 3)),
                )  # fmt: skip
            )
    for lid, n in enumerate(_names(model, mujoco.mjtObj.mjOBJ_LIGHT, model.nlight)):
        name = n or f"light{lid}"
        p = f"appearance.light.{name}"
        pos0, dir0 = model.light_pos[lid].copy(), model.light_dir[lid].copy()
        defs += [
            ParamDef(f"{p}.active", True, choices=(True, False),
                     apply=lambda m, v, i=lid: m.light_active.__setitem__(i, bool(v))),
            ParamDef(f"{p}.pos_offset", np.zeros(3), -20.0, 20.0, shape=(3,), unit="m",
                     apply=lambda m, v, i=lid, p0=pos0: m.light_pos.__setitem__(i, p0 + v)),
            ParamDef(f"{p}.dir_offset", np.zeros(3), -2.0, 2.0, shape=(3,), unit="1",
                     apply=lambda m, v, i=lid, d0=dir0:
                         m.light_dir.__setitem__(i, _unit(d0 + v, d0))),
            ParamDef(f"{p}.diffuse", model.light_diffuse[lid].copy(), 0.0, 2.0, shape=(3,),
                     unit="rgb", apply=_set_row("light_diffuse", lid)),
            ParamDef(f"{p}.ambient", model.light_ambient[lid].copy(), 0.0, 1.0, shape=(3,),
                     unit="rgb", apply=_set_row("light_ambient", lid)),
        ]  # fmt: skip
    defs += [
        ParamDef("appearance.headlight.ambient", np.asarray(model.vis.headlight.ambient).copy(),
                 0.0, 1.0, shape=(3,), unit="rgb",
                 apply=lambda m, v: _set_vis(m, "ambient", v)),
        ParamDef("appearance.headlight.diffuse", np.asarray(model.vis.headlight.diffuse).copy(),
                 0.0, 1.0, shape=(3,), unit="rgb",
                 apply=lambda m, v: _set_vis(m, "diffuse", v)),
    ]  # fmt: skip
    for cam in cameras:
        cid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, cam)
        if cid < 0:
            raise ValueError(f"randomized camera {cam!r} is not in the model")
        p = f"appearance.camera.{cam}"
        pos0, quat0 = model.cam_pos[cid].copy(), model.cam_quat[cid].copy()
        defs += [
            ParamDef(f"{p}.pos_offset", np.zeros(3), -2.0, 2.0, shape=(3,), unit="m",
                     apply=lambda m, v, i=cid, p0=pos0: m.cam_pos.__setitem__(i, p0 + v)),
            ParamDef(f"{p}.rot_offset", np.zeros(3), -45.0, 45.0, shape=(3,), unit="deg",
                     doc="xyz Euler rotation in the camera frame",
                     apply=lambda m, v, i=cid, q0=quat0: m.cam_quat.__setitem__(i, _rotate(q0, v))),
            ParamDef(f"{p}.fovy", float(model.cam_fovy[cid]), 10.0, 160.0, unit="deg",
                     apply=lambda m, v, i=cid: m.cam_fovy.__setitem__(i, v)),
        ]  # fmt: skip
    defs += Distractors.param_defs(model)
    return defs


def _unit(v: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    n = math.sqrt(float(v.dot(v)))  # np.linalg.norm's arithmetic, without its checks
    return v / n if n > 1e-9 else fallback


def _rotate(q0: np.ndarray, euler_deg: np.ndarray) -> np.ndarray:
    dq = np.empty(4)
    mujoco.mju_euler2Quat(dq, np.deg2rad(np.asarray(euler_deg, float)), "xyz")
    q = np.empty(4)
    mujoco.mju_mulQuat(q, np.asarray(q0, float), dq)
    return q


def _set_row(field: str, row: int, cols: slice = slice(None)):
    def apply(m: Any, v: Any) -> None:
        getattr(m, field)[row, cols] = v

    return apply


def _set_vis(m: Any, attr: str, v: Any) -> None:
    vis = getattr(m, "vis", None)
    if vis is not None:  # per-simulation views in batches have no visual options
        setattr(vis.headlight, attr, np.asarray(v, np.float32))


class TextureBank:
    """Regenerates ``rt_*`` textures from episode params and uploads the changed ones."""

    def __init__(self, model: mujoco.MjModel):
        self.model = model
        self.slots = texture_slots(model)
        self._nominal_px: dict[str, np.ndarray] | None = None  # see _nominal
        self._applied: dict[str, tuple] = {}
        self._last_params: Any = None

    @property
    def _nominal(self) -> dict[str, np.ndarray]:
        """The compiled pixels of each slot, copied on the first ``refresh`` (before it writes
        any): an env that never renders, rebuilt every reset, never pays for the copies."""
        if self._nominal_px is None:
            self._nominal_px = {s: self._pixels(t).copy() for s, t in self.slots.items()}
        return self._nominal_px

    def _pixels(self, texid: int) -> np.ndarray:
        m = self.model
        h, w, c = int(m.tex_height[texid]), int(m.tex_width[texid]), int(m.tex_nchannel[texid])
        adr = int(m.tex_adr[texid])
        return m.tex_data[adr : adr + h * w * c].reshape(h, w, c)

    def refresh(self, params: Mapping[str, Any], upload) -> int:
        """Write each slot's pixels for ``params``; ``upload(texid)`` the changed ones.

        Episode params are a new dict per reset, so the same dict means nothing changed.
        """
        if params is self._last_params:
            return 0
        self._last_params = params
        nominal = self._nominal  # copied before the first write
        n = 0
        for slot, texid in self.slots.items():
            p = f"appearance.tex.{slot}"
            key = (
                params.get(f"{p}.pattern", "nominal"),
                tuple(np.round(np.asarray(params.get(f"{p}.color1", (0,) * 3)), 6)),
                tuple(np.round(np.asarray(params.get(f"{p}.color2", (0,) * 3)), 6)),
                round(float(params.get(f"{p}.scale", 4.0)), 6),
                int(params.get(f"{p}.seed", 0)),
            )
            if self._applied.get(slot) == key:
                continue
            px = self._pixels(texid)
            if key[0] == "nominal":
                px[...] = nominal[slot]
            else:
                h, w = px.shape[:2]
                px[...] = make_texture(key[0], key[1], key[2], key[3], key[4], h, w)[
                    ..., : px.shape[2]
                ]
            self._applied[slot] = key
            upload(texid)
            n += 1
        return n


class Distractors:
    """Flying distractors: per-episode shape/size/pose/velocity, moved each control step."""

    def __init__(self, model: mujoco.MjModel):
        names = _names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)
        self.bodies = [i for i, n in enumerate(names) if n.startswith(DISTRACTOR_PREFIX)]
        self.mocap = np.array([model.body_mocapid[b] for b in self.bodies], dtype=np.int64)
        self.geoms = np.array(
            [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, names[b]) for b in self.bodies],
            dtype=np.int64,
        )
        nid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_NUMERIC, DISTRACTOR_REGION)
        if nid >= 0:
            adr = model.numeric_adr[nid]
            region = model.numeric_data[adr : adr + 6]
            self.center, self.half = region[:3].copy(), np.maximum(region[3:].copy(), 1e-6)
        else:
            self.center, self.half = np.zeros(3), np.ones(3)
        self.group = model.geom_group[self.geoms].copy()  # the groups they are drawn in
        self.pos = np.zeros((len(self.bodies), 3))
        self.vel = np.zeros((len(self.bodies), 3))
        self.lo, self.hi = self.center - self.half, self.center + self.half
        self.count = 0

    def __len__(self) -> int:
        return len(self.bodies)

    @staticmethod
    def param_defs(model: mujoco.MjModel) -> list[ParamDef]:
        names = _names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)
        n = sum(1 for x in names if x.startswith(DISTRACTOR_PREFIX))
        if n == 0:
            return []
        defs = [ParamDef("appearance.distractors.count", 0, 0, n, dtype=int,
                         doc="number of visible flying distractors")]  # fmt: skip
        for i in range(n):
            p = f"appearance.distractor.{i}"
            defs += [
                ParamDef(f"{p}.shape", "box", choices=SHAPES),
                ParamDef(f"{p}.size", np.full(3, 0.05), 0.005, 1.0, shape=(3,), unit="m"),
                ParamDef(f"{p}.pos", np.zeros(3), -1.0, 1.0, shape=(3,), unit="region",
                         doc="start position, as a fraction of the region's half-extent"),
                ParamDef(f"{p}.vel", np.zeros(3), -5.0, 5.0, shape=(3,), unit="m/s"),
            ]  # fmt: skip
        return defs

    def apply(self, model: mujoco.MjModel, data: mujoco.MjData, params: Mapping[str, Any]) -> None:
        self.count = int(params.get("appearance.distractors.count", 0))
        for i, g in enumerate(self.geoms):
            p = f"appearance.distractor.{i}"
            model.geom_type[g] = _SHAPE_TYPES[params.get(f"{p}.shape", "box")]
            model.geom_size[g] = params.get(f"{p}.size", np.full(3, 0.05))
            model.geom_rgba[g, 3] = 1.0 if i < self.count else 0.0
            # hidden ones also leave the drawn groups: no draw call (on llvmpipe every geom in
            # the scene costs, transparent or far away) and nothing for culling to test
            model.geom_group[g] = self.group[i] if i < self.count else _HIDDEN_GROUP
            self.pos[i] = self.center + self.half * np.asarray(params.get(f"{p}.pos", np.zeros(3)))
            self.vel[i] = params.get(f"{p}.vel", np.zeros(3))
        self._write(data)

    def advance(self, data: mujoco.MjData, dt: float) -> None:
        """Move visible distractors, bouncing off the region's walls (hidden ones stay parked
        where ``apply`` put them). Few numpy calls: this runs every rendered frame."""
        k = self.count
        if k == 0:
            return
        pos, vel = self.pos[:k], self.vel[:k]
        pos += vel * dt
        out = (pos < self.lo) | (pos > self.hi)
        if out.any():
            vel[out] *= -1.0
            np.clip(pos, self.lo, self.hi, out=pos)
        data.mocap_pos[self.mocap[:k]] = pos

    def _write(self, data: mujoco.MjData) -> None:
        if len(self.mocap):
            hidden = np.arange(len(self.mocap)) >= self.count
            pos = self.pos.copy()
            pos[hidden] = (0.0, 0.0, -1000.0)
            data.mocap_pos[self.mocap] = pos
