"""``simenvs/DroneRace-v0``: fly a quadrotor through a sequence of (moving) gates.

See ``DroneRaceEnv`` for observations, actions, reward and randomization.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import mujoco
import numpy as np

import simenvs.core.scene as scene
from simenvs.core import ParamDef
from simenvs.envs.drone_race.gates import HIDDEN_GROUP as _HIDDEN
from simenvs.envs.drone_race.gates import (
    HIT,
    PASS,
    SHAPES,
    GateGeometry,
    add_gate,
    add_gate_meshes,
    classify,
)
from simenvs.envs.drone_race.textures import SPLITS, add_gate_textures
from simenvs.envs.drone_race.tracks import TRACKS, Track, make_track
from simenvs.envs.quadrotor_task import QuadrotorTask, merge_reward_weights
from simenvs.robots.indexing import as_slice
from simenvs.robots.quadrotor import QuadrotorParams, get_preset

_PARKED = (0.0, 0.0, -50.0)  # mocap position of unused gates, below the floor

__all__ = ["DroneRaceEnv", "REWARD_WEIGHTS"]

MAX_GATES = 10
REWARD_WEIGHTS = {
    "progress": 1.0,  # per metre of approach to the next gate centre
    "gate": 2.0,  # per gate passed
    "lap": 10.0,  # lap completed
    "crash": 10.0,  # subtracted on a crash
    "body_rate": 0.002,  # times |w|^2 (rad^2/s^2)
    "action_change": 0.02,  # times |a_t - a_{t-1}|^2 (normalized)
}
_GATE_STATE = [
    ("gate1_rel_pos", 3, "m"),
    ("gate1_normal", 3, "1"),
    ("gate2_rel_pos", 3, "m"),
    ("gate2_normal", 3, "1"),
]


class DroneRaceEnv(QuadrotorTask):
    """Gate racing: pass every gate of the track in order, through its opening, the right way.

    **Observation** ``obs_mode="state"`` (float32, 34 values)::

        pos 3 (m, world) | vel 3 (m/s, world) | rot 9 (body-to-world R, row-major) |
        body_rates 3 (rad/s, body) | gate1_rel_pos 3 (next gate centre - pos, world, m) |
        gate1_normal 3 (direction to fly through it, world) | gate2_rel_pos 3 | gate2_normal 3 |
        last_action 4

    ``"rgb"``/``"depth"``: the forward FPV camera ``fpv`` (64x64 default, uint8 HWC; depth
    scaled so 255 = ``depth_max``), ``"state_rgb"``: both.

    **Action** (``action_mode="ctbr"``, default): collective thrust and body rates in [-1, 1]
    (``action_layout()`` gives the physical map); ``"motors"``: four rotor speeds.

    **Reward**: progress toward the next gate centre (m) + gate bonus (+ lap bonus) - crash
    penalty - small body-rate and action-change penalties (``REWARD_WEIGHTS``, override with
    ``reward_weights={...}``).

    **Termination**: lap(s) completed (``is_success``) or a crash: gate frame hit, ground,
    leaving the arena (``crashed``, ``crash_reason``). ``info``: ``gates_passed``, ``lap_time``
    (s: race time so far; the lap time on the step that completes it), ``crashed``,
    ``is_success``, ``target_gate``.

    **Options**: ``track`` in circle | figure_eight | slalom | random (a new valid random layout
    per episode from ``layout.track.seed``); ``moving_gates`` with ``gate_speed`` (peak m/s,
    param ``layout.gate.speed``); ``gate_shape`` square | round | random; ``gate_size``
    (opening, m); ``gate_textures`` train | test | all (held-out split); ``laps``;
    ``n_distractors`` (None: 4 with image observations, 0 with state only, where they would
    only cost time); ``track_scale`` (None: 1 for racer-size quads, 0.4 for micro quads);
    plus the QuadrotorTask options (``preset`` default "racer", ``action_mode``, ...).
    """

    max_episode_steps = 1200
    expert_entry_point = "simenvs.agents.experts.drone_race:DroneRaceExpert"

    def __init__(
        self,
        *,
        track: str = "circle",
        moving_gates: bool = False,
        gate_speed: float = 0.5,
        gate_shape: str = "random",
        gate_size: float | None = None,
        gate_textures: str = "train",
        laps: int = 1,
        n_distractors: int | None = None,
        track_scale: float | None = None,
        reward_weights: Mapping[str, float] | None = None,
        preset: str | QuadrotorParams = "racer",
        **kwargs: Any,
    ):
        if track not in TRACKS:
            raise ValueError(f"unknown track {track!r}; choose from {list(TRACKS)}")
        if gate_shape not in (*SHAPES, "random"):
            raise ValueError(
                f"unknown gate_shape {gate_shape!r}; choose from square, round, random"
            )
        if gate_textures not in SPLITS:
            raise ValueError(f"unknown gate_textures {gate_textures!r}; choose from {list(SPLITS)}")
        if int(laps) < 1:
            raise ValueError(f"laps must be >= 1, got {laps!r}")
        if not (math.isfinite(gate_speed) and 0.0 <= gate_speed <= 3.0):
            raise ValueError(f"gate_speed must be in [0, 3] m/s, got {gate_speed!r}")
        if n_distractors is None:  # flying distractors only matter to cameras
            n_distractors = 0 if kwargs.get("obs_mode", "state") == "state" else 4
        if not 0 <= int(n_distractors) <= 16:
            raise ValueError(f"n_distractors must be in [0, 16], got {n_distractors!r}")
        weights = merge_reward_weights(REWARD_WEIGHTS, reward_weights)
        qp = get_preset(preset)
        s = float(track_scale) if track_scale is not None else (1.0 if qp.arm >= 0.1 else 0.4)
        if not (math.isfinite(s) and 0.05 <= s <= 5.0):
            raise ValueError(f"track_scale must be in [0.05, 5], got {track_scale!r}")
        self.scale = s
        self.track_name = track
        self.moving_gates = bool(moving_gates)
        self.gate_speed = float(gate_speed)
        self.gate_shape = gate_shape
        self.gate_textures = gate_textures
        self.laps = int(laps)
        self.n_distractors = int(n_distractors)
        self.weights = weights
        geo = GateGeometry().scaled(s)
        if gate_size is not None:
            if not (math.isfinite(gate_size) and gate_size > 2 * qp.radius):
                raise ValueError(
                    f"gate_size must exceed the quad's diameter {2 * qp.radius:.3f} m, "
                    f"got {gate_size!r}"
                )
            geo = GateGeometry(float(gate_size), geo.frame, geo.depth)
        self.gate_geo = geo
        self.half_extent = 20.0 * s
        self.depth_max = 20.0 * s
        self._fixed_track: Track | None = None if track == "random" else make_track(track, 0, s)
        self.track: Track | None = None
        self.n_gates = 0
        kwargs.setdefault("arena_low", (-self.half_extent, -self.half_extent, 0.0))
        kwargs.setdefault("arena_high", (self.half_extent, self.half_extent, 8.0 * s))
        super().__init__(preset=qp, **kwargs)

    # ------------------------------------------------------------------ scene
    def build_spec(self, rng: np.random.Generator) -> mujoco.MjSpec:
        s, h = self.scale, self.half_extent
        spec = mujoco.MjSpec()
        spec.modelname = "drone_race"
        scene.fast_visual(spec, 256, 256)
        # nothing here needs contacts: gates, ground and arena are checked geometrically and
        # end the episode, so collision detection is switched off (cheaper substeps)
        spec.option.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
        spec.stat.extent = 2.0 * h
        spec.stat.center = [0.0, 0.0, 2.0 * s]
        spec.visual.headlight.ambient = [0.3, 0.3, 0.3]
        spec.visual.headlight.diffuse = [0.5, 0.5, 0.5]
        # cheap rendering: coarse tessellation of round primitives and an indoor arena (walls
        # and a ceiling) instead of a skybox; both together halve the cost of a 64x64 frame
        spec.visual.quality.numslices = 8
        spec.visual.quality.numstacks = 4
        spec.visual.quality.numquads = 1
        floor = scene.add_random_texture(
            spec, "floor", texrepeat=(h / (2 * s), h / (2 * s)), rgb1=(0.35, 0.4, 0.35),
            rgb2=(0.3, 0.33, 0.3),
        )  # fmt: skip
        walls = scene.add_random_texture(
            spec, "walls", texrepeat=(8, 2), rgb1=(0.55, 0.6, 0.7), rgb2=(0.45, 0.5, 0.6)
        )
        wb = spec.worldbody
        wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[h, h, h], material=floor)
        wall_h = 4.0 * s  # half height: the walls reach the arena's ceiling at 8 s
        for k, (pos, size) in enumerate(_walls(h, wall_h)):
            wb.add_geom(
                name=f"wall{k}", type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size,
                material=walls, contype=0, conaffinity=0,
            )  # fmt: skip
        wb.add_light(
            name="sun", pos=[0.0, 0.0, 10.0 * s], dir=[0.3, 0.2, -1.0],
            type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=False,
            diffuse=[0.6, 0.6, 0.6], ambient=[0.1, 0.1, 0.1],
        )  # fmt: skip
        # overview: inside the arena, high on the -y wall, looking at the centre
        f = np.array([0.0, 0.9 * h, -7.0 * s])
        f /= np.linalg.norm(f)
        wb.add_camera(
            name="overview", pos=[0.0, -0.9 * h, 7.0 * s], fovy=75.0,
            xyaxes=[1.0, 0.0, 0.0, 0.0, -f[2], f[1]],
        )  # fmt: skip
        self._gate_mats = add_gate_textures(spec)
        meshes = add_gate_meshes(spec, self.gate_geo)
        self._square_geoms, self._round_geoms = [], []
        for i in range(MAX_GATES):
            sq, rd = add_gate(spec, f"gate{i}", meshes, self._gate_mats[0])
            self._square_geoms.append(sq)
            self._round_geoms.append(rd)
        if self.n_distractors:
            scene.add_distractors(
                spec, self.n_distractors, [0.0, 0.0, 2.5 * s], [0.7 * h, 0.7 * h, 2.0 * s]
            )
        self.add_quad(spec, (0.0, 0.0, 1.0 * s))
        return spec

    # ------------------------------------------------------------------ params
    def param_defs(self) -> list[ParamDef]:
        m = self.model
        mats = np.array([m.material(n).id for n in self._gate_mats])
        sq = np.array([m.geom(n).id for n in self._square_geoms])
        rd = np.array([m.geom(n).id for n in self._round_geoms])
        self._frame_geoms = (sq, rd)
        frames = np.concatenate([sq, rd])
        self._gate_mocap = np.array(
            [m.body_mocapid[m.body(f"gate{i}").id] for i in range(MAX_GATES)]
        )
        self._gate_rows_cache: dict[int, tuple] = {}  # _gate_rows of this model
        split = SPLITS[self.gate_textures]
        shapes = SHAPES if self.gate_shape == "random" else (self.gate_shape,)
        s = self.scale

        # the rows these write one value to, as slices where evenly spaced (basic indexing:
        # cheaper per reset than index arrays)
        frames_i, mats_i = as_slice(np.sort(frames)), as_slice(np.sort(mats))
        sq_i, rd_i = as_slice(np.sort(sq)), as_slice(np.sort(rd))

        def set_texture(model: Any, v: Any) -> None:
            model.geom_matid[frames_i] = mats[int(v)]

        def set_tint(model: Any, v: Any) -> None:
            model.mat_rgba[mats_i, :3] = np.asarray(v, dtype=float)

        def set_emission(model: Any, v: Any) -> None:
            model.mat_emission[mats_i] = v

        def set_shape(model: Any, v: Any) -> None:
            model.geom_group[sq_i] = 0 if v == "square" else _HIDDEN
            model.geom_group[rd_i] = 0 if v == "round" else _HIDDEN

        return super().param_defs() + [
            ParamDef("appearance.gate.texture", split[0], choices=split,
                     doc=f"gate texture id ({self.gate_textures} split)", apply=set_texture),
            ParamDef("appearance.gate.tint", np.ones(3), 0.0, 1.0, shape=(3,), unit="rgb",
                     doc="multiplies the gate texture", apply=set_tint),
            ParamDef("appearance.gate.emission", 0.2, 0.0, 1.0, unit="1",
                     doc="gate material emission", apply=set_emission),
            ParamDef("layout.gate.shape", shapes[0], choices=shapes, apply=set_shape),
            ParamDef("layout.track.seed", 0, 0, 2**31 - 1, dtype=int,
                     doc="random-track generator seed (track='random')"),
            ParamDef("layout.track.pos_jitter", np.zeros(3), 0.0, 2.0 * s, shape=(3,), unit="m",
                     doc="per-gate uniform position perturbation amplitude"),
            ParamDef("layout.track.yaw_jitter", 0.0, 0.0, 45.0, unit="deg",
                     doc="per-gate uniform heading perturbation amplitude"),
            ParamDef("layout.start.pos_jitter", 0.0, 0.0, 1.0 * s, unit="m",
                     doc="uniform start position perturbation"),
            ParamDef("layout.gate.speed", self.gate_speed, 0.0, 3.0, unit="m/s",
                     doc="peak gate speed when moving_gates=True"),
            ParamDef("layout.gate.amplitude", 0.5 * s, 0.0, 2.0 * s, unit="m",
                     doc="gate motion amplitude (lateral; half of it vertical)"),
        ]  # fmt: skip

    def randomization_presets(self) -> dict[str, dict]:
        base = super().randomization_presets()
        s = self.scale
        split = list(SPLITS[self.gate_textures])
        shapes = list(SHAPES if self.gate_shape == "random" else (self.gate_shape,))
        common = {
            "appearance.gate.texture": {"dist": "categorical", "choices": split},
            "layout.gate.shape": {"dist": "categorical", "choices": shapes},
            "layout.track.seed": [0, 1_000_000],
        }
        default = {
            **common,
            "appearance.gate.tint": [0.6, 1.0],
            "appearance.gate.emission": [0.0, 0.3],
            "appearance.camera.fpv.rot_offset": {"dist": "uniform", "low": [-8.0, -2.0, -2.0],
                                                 "high": [8.0, 2.0, 2.0]},
            "layout.track.pos_jitter": {"dist": "uniform", "low": [0.2 * s, 0.2 * s, 0.1 * s],
                                        "high": [0.5 * s, 0.5 * s, 0.3 * s]},
            "layout.track.yaw_jitter": [0.0, 10.0],
            "layout.start.pos_jitter": [0.0, 0.3 * s],
        }  # fmt: skip
        wide = {
            **common,
            "appearance.gate.tint": [0.3, 1.0],
            "appearance.gate.emission": [0.0, 0.8],
            "appearance.camera.fpv.rot_offset": {"dist": "uniform", "low": [-15.0, -4.0, -4.0],
                                                 "high": [15.0, 4.0, 4.0]},
            "layout.track.pos_jitter": {"dist": "uniform", "low": [0.3 * s, 0.3 * s, 0.1 * s],
                                        "high": [1.0 * s, 1.0 * s, 0.5 * s]},
            "layout.track.yaw_jitter": [0.0, 25.0],
            "layout.start.pos_jitter": [0.0, 0.6 * s],
        }  # fmt: skip
        return {"default": {**base["default"], **default}, "wide": {**base["wide"], **wide}}

    # ------------------------------------------------------------------ reset
    def reset_task(self, rng: np.random.Generator) -> None:
        super().reset_task(rng)
        prm, s, geo = self.params, self.scale, self.gate_geo
        track = self._fixed_track
        if track is None:
            track = make_track("random", int(prm.get("layout.track.seed", 0)), s)
        n = track.n
        jit = np.asarray(prm.get("layout.track.pos_jitter", 0.0), dtype=float)
        # the layout draws, in their historical order: gate jitter, yaw jitter (then phases
        # and start jitter below); one rng.uniform call gives the same values as two
        u = rng.uniform(-1.0, 1.0, 4 * n)
        pos = track.pos + u[: 3 * n].reshape(n, 3) * jit
        np.maximum(pos[:, 2], geo.outer + 0.3 * s, out=pos[:, 2])
        yaw_j = math.radians(float(prm.get("layout.track.yaw_jitter", 0.0)))
        yaw = track.yaw + u[3 * n :] * yaw_j
        self.track = Track(track.name, pos, yaw, track.closed)
        self.n_gates = n
        cos, sin = np.cos(yaw), np.sin(yaw)
        self._cos, self._sin = cos, sin
        self._g_pos0 = pos.copy()
        self._g_pos = pos.copy()
        normals = np.zeros((n, 3))
        normals[:, 0], normals[:, 1] = cos, sin
        self._normals = normals
        self._nl = [tuple(x) for x in normals.tolist()]
        self._cl, self._sl = cos.tolist(), sin.tolist()
        self._gl = [tuple(x) for x in pos.tolist()]
        self._round = prm.get("layout.gate.shape", "square") == "round"
        amp = float(prm.get("layout.gate.amplitude", 0.5 * s))
        speed = float(prm.get("layout.gate.speed", self.gate_speed))
        self._moving = self.moving_gates and amp > 0.0 and speed > 0.0
        self._amp = amp
        self._omega = speed / amp if self._moving else 0.0
        self._phase = rng.uniform(0.0, 2 * np.pi, (n, 2))
        lateral = np.zeros((n, 3))
        lateral[:, 0], lateral[:, 1] = -sin, cos
        self._lateral = lateral
        d = self.data
        used, unused, hidden = self._gate_rows(n)
        d.mocap_pos[unused] = _PARKED
        self.model.geom_group[hidden] = _HIDDEN  # unused gates: parked below the floor, not drawn
        d.mocap_pos[used] = pos
        quat = d.mocap_quat[used]
        quat[:] = 0.0
        quat[:, 0], quat[:, 3] = np.cos(0.5 * yaw), np.sin(0.5 * yaw)
        d.mocap_quat[used] = quat  # (a no-op where quat is a view)
        self._move_gates(0.0)
        # start before the first gate
        start = pos[0] - (3.0 * s) * normals[0]  # self.track.start(3.0 * s)
        syaw = float(yaw[0])
        sj = float(prm.get("layout.start.pos_jitter", 0.0))
        start = start + rng.uniform(-1.0, 1.0, 3) * sj
        start[2] = max(start[2], 0.5 * s)
        self.reset_quad(start, syaw)
        # race state
        self._dt = self.dt  # cached: the property reads model.opt each call
        self._target = 0
        self._passed = 0
        self._goal = n * self.laps if track.closed else n
        self._t = 0.0
        self._lap_time = 0.0
        self._prev_p = tuple(start.tolist())
        self._pgl = self._gl
        d0 = self._g_pos[0] - start
        self._dist = math.sqrt(float(d0.dot(d0)))  # np.linalg.norm's arithmetic, without its checks
        self._near = geo.outer * math.sqrt(2.0) + self.quad_params.radius
        # bound on gate speed (lateral a*w, vertical 0.4*a*w) for the gate-loop culling
        self._gate_vmax = 1.1 * amp * self._omega if self._moving else 0.0
        self._cull: tuple | None = None
        self._cull_horizon = 2.0 * s  # gates nearer than near + this are tested every step

    def _gate_rows(self, n: int) -> tuple[Any, Any, Any]:
        """Mocap rows of the used and unused gates and the frame geoms of the unused ones for
        an ``n``-gate track, as slices where evenly spaced (cached per model and ``n``)."""
        rows = self._gate_rows_cache.get(n)
        if rows is None:
            mocap = self._gate_mocap
            hidden = np.sort(np.concatenate([ids[n:] for ids in self._frame_geoms]))
            rows = (as_slice(mocap[:n]), as_slice(mocap[n:]), as_slice(hidden))
            self._gate_rows_cache[n] = rows
        return rows

    def _move_gates(self, t: float) -> None:
        if not self._moving:
            return
        w, a, ph = self._omega, self._amp, self._phase
        lat = np.sin(w * t + ph[:, 0])[:, None] * self._lateral
        up = 0.5 * np.sin(0.8 * w * t + ph[:, 1])
        g = self._g_pos0 + a * lat
        g[:, 2] += a * up
        self._g_pos = g
        self._gl = [tuple(x) for x in g.tolist()]
        self.data.mocap_pos[self._gate_mocap[: self.n_gates]] = g

    def gate_velocity(self, i: int) -> np.ndarray:
        """Current velocity of gate ``i`` (m/s); zero for static gates."""
        if not self._moving:
            return np.zeros(3)
        w, a, ph, t = self._omega, self._amp, self._phase[i], self._t
        v = a * w * math.cos(w * t + ph[0]) * self._lateral[i]
        v[2] += 0.5 * a * 0.8 * w * math.cos(0.8 * w * t + ph[1])
        return v

    # ------------------------------------------------------------------ step
    def apply_action(self, action: np.ndarray) -> None:
        super().apply_action(action)
        if self._moving:
            self._pgl = self._gl
            self._move_gates(self._t + self._dt)

    def evaluate(self) -> tuple[float, bool, dict]:
        # plain Python floats: for a handful of gates this is several times faster than numpy
        self._t += self._dt
        p = self.quad.v_pos.tolist()
        px, py, pz = p
        ox, oy, oz = self._prev_p
        reason = self.quad_failure(p)
        passed = False
        if not reason:
            step = math.sqrt((px - ox) ** 2 + (py - oy) ** 2 + (pz - oz) ** 2)
            gates = self._gate_candidates(px, py, pz, step)
            if gates is None or gates:
                reason, passed = self._gate_loop(px, py, pz, ox, oy, oz, step, gates)
        w = self.weights
        reward = 0.0
        success = False
        if passed:
            self._passed += 1
            reward += w["gate"]
            if self._passed >= self._goal:
                success = True
                reward += w["lap"]
                self._lap_time = self._t
            self._target = (self._target + 1) % self.n_gates
            tx, ty, tz = self._gl[self._target]
            dist = math.sqrt((tx - px) ** 2 + (ty - py) ** 2 + (tz - pz) ** 2)
            # progress up to the passed gate still counts
            reward += w["progress"] * self._dist
        else:
            tx, ty, tz = self._gl[self._target]
            dist = math.sqrt((tx - px) ** 2 + (ty - py) ** 2 + (tz - pz) ** 2)
            reward += w["progress"] * (self._dist - dist)
        self._dist = dist
        wx, wy, wz = self.quad.v_angvel.tolist()  # rate_penalty(), inlined
        reward -= w["body_rate"] * (wx * wx + wy * wy + wz * wz) + w["action_change"] * (
            self._action_change2
        )
        crashed = bool(reason)
        if crashed:
            reward -= w["crash"]
        self._prev_p = (px, py, pz)
        info = {
            "gates_passed": self._passed,
            "lap_time": self._lap_time if success else self._t,
            "crashed": crashed,
            "crash_reason": reason,
            "is_success": success,
            "target_gate": self._target,
        }
        return reward, crashed or success, info

    def _gate_candidates(self, px: float, py: float, pz: float, step: float) -> list[int] | None:
        """Gates the gate loop must test this step, from the bound of the last full scan (None:
        scan them all). A full scan records each gate's distance ``D`` from the quad; gates
        that were within ``near + horizon`` are tested every step, and while the quad has moved
        ``disp`` and the gates at most ``vmax * dt`` since, ``D - disp - vmax * dt > near +
        step`` holds for every other gate: the loop would skip them, so they are not visited.
        """
        c = self._cull
        if c is None or c[0] is not (self._g_pos0 if self._moving else self._gl):
            return None
        _, sx, sy, sz, t0, b_far, near = c
        disp = math.sqrt((px - sx) ** 2 + (py - sy) ** 2 + (pz - sz) ** 2)
        if disp + self._gate_vmax * abs(self._t - t0) + step + 1e-6 < b_far:
            return near
        return None

    def _gate_loop(
        self,
        px: float,
        py: float,
        pz: float,
        ox: float,
        oy: float,
        oz: float,
        step: float,
        gates: list[int] | None,
    ) -> tuple[str, bool]:
        """Pass/hit tests of ``gates`` (None: all, recording a new culling bound) within
        ``near + step`` of the quad, in gate order: (crash reason or "", whether the target
        gate was passed)."""
        passed = False
        lim = self._near + step
        lim2 = lim * lim
        r = self.quad_params.radius
        gl, pgl, cl, sl = self._gl, self._pgl, self._cl, self._sl
        scan = gates is None
        d2s = []
        for i in range(self.n_gates) if scan else gates:
            gx, gy, gz = gl[i]
            d2 = (px - gx) ** 2 + (py - gy) ** 2 + (pz - gz) ** 2
            if scan:
                d2s.append(d2)
            if d2 > lim2:
                continue
            c, sn = cl[i], sl[i]
            hx, hy, hz = pgl[i]
            a0, b0 = ox - hx, oy - hy
            a1, b1 = px - gx, py - gy
            prev = (a0 * c + b0 * sn, -a0 * sn + b0 * c, oz - hz)
            cur = (a1 * c + b1 * sn, -a1 * sn + b1 * c, pz - gz)
            res = classify(prev, cur, self._round, self.gate_geo, r)
            if res == HIT:
                self._cull = None
                return "gate_frame", passed
            if res == PASS and i == self._target:
                passed = True
        if scan:
            near_l, b_far, horizon = [], math.inf, self._cull_horizon
            for i, d2 in enumerate(d2s):
                b = math.sqrt(d2) - self._near
                if b < horizon:
                    near_l.append(i)
                elif b < b_far:
                    b_far = b
            key = self._g_pos0 if self._moving else gl
            self._cull = (key, px, py, pz, self._t, b_far, near_l)
        return "", passed

    # ------------------------------------------------------------------ observation
    def task_state(self) -> list[float]:
        px, py, pz = self.quad.v_pos.tolist()
        k = self._target
        k2 = k + 1
        if k2 >= self.n_gates:
            k2 = 0 if self.track.closed else self.n_gates - 1
        (ax, ay, az), (bx, by, bz) = self._gl[k], self._gl[k2]
        return [ax - px, ay - py, az - pz, *self._nl[k], bx - px, by - py, bz - pz, *self._nl[k2]]

    def task_state_layout(self) -> list[tuple[str, int, str]]:
        return list(_GATE_STATE)

    def teleport(
        self,
        pos: Any,
        vel: Any = (0.0, 0.0, 0.0),
        yaw: float = 0.0,
    ) -> None:
        """Put the quad at ``pos`` (level, heading ``yaw``) with ``vel``, motors at hover, as if
        it had been there at the previous step (tests, curriculum starts)."""
        self.reset_quad(pos, yaw, vel)
        mujoco.mj_forward(self.model, self.data)
        self._cull = None
        self._prev_p = tuple(float(x) for x in pos)
        tx, ty, tz = self._gl[self._target]
        self._dist = math.sqrt((tx - pos[0]) ** 2 + (ty - pos[1]) ** 2 + (tz - pos[2]) ** 2)

    def race_state(self) -> dict[str, Any]:
        """Privileged race state for experts and tests (gate poses, target, time)."""
        return {
            "gate_pos": self._g_pos.copy(),
            "gate_normals": self._normals.copy(),
            "target": self._target,
            "gates_passed": self._passed,
            "goal": self._goal,
            "time": self._t,
            "closed": self.track.closed,
        }


def _walls(h: float, wall_h: float) -> list[tuple[list[float], list[float]]]:
    """Four walls and a ceiling around the arena: (pos, half sizes) of axis-aligned boxes."""
    t = 0.05
    return [
        ([h, 0.0, wall_h], [t, h, wall_h]),
        ([-h, 0.0, wall_h], [t, h, wall_h]),
        ([0.0, h, wall_h], [h, t, wall_h]),
        ([0.0, -h, wall_h], [h, t, wall_h]),
        ([0.0, 0.0, 2.0 * wall_h], [h, h, t]),  # ceiling
    ]
