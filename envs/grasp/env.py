"""``simenvs/Grasp-v0``: a 7-DoF arm with a parallel gripper grasping procedural objects.

The PyBullet KukaDiverseObjectEnv task (procedural objects split 900/100, Cartesian actions,
success = object lifted), rebuilt on ``SimEnv``: real observation spaces, seeding, per-episode
appearance and dynamics randomization, labels, and physics that holds a 0.5 kg object.
"""

from __future__ import annotations

import functools
from typing import Any

import mujoco
import numpy as np
from gymnasium import spaces

from simenvs.core import SimEnv
from simenvs.envs.grasp import scene as gscene
from simenvs.envs.grasp.labels import object_labels
from simenvs.envs.grasp.objects import GraspObject, make_object, object_seeds
from simenvs.randomization.params import ParamDef
from simenvs.robots import arm
from simenvs.robots.arm_ik import DiffIK, yaw_down_quat

__all__ = ["GraspEnv", "ACTION_MODES", "REWARD_TYPES"]

ACTION_MODES = ("cartesian", "joint")
REWARD_TYPES = ("sparse", "dense")
MAX_OBJECTS = 5
MAX_DPOS = 0.03  # m per control step (0.6 m/s at 20 Hz)
MAX_DYAW = 0.1  # rad per control step (5.7°)
MAX_DQ = 0.05  # rad per control step in joint mode
YAW_LIMIT = 1.75  # rad either side of the home yaw (the gripper is symmetric under 180°)
WORKSPACE = (np.array([0.2, -0.4, 0.01]), np.array([0.8, 0.4, 0.45]))  # TCP target box, m
_WS_LO_HI = tuple(zip(WORKSPACE[0].tolist(), WORKSPACE[1].tolist()))  # per axis (lo, hi)
GRIP_OPEN, GRIP_CLOSED = arm.FINGER_OPEN, arm.FINGER_CLOSED_TARGET
LIFT_HEIGHT = 0.1  # m above the object's resting height
HOLD_TIME = 0.5  # s
SETTLE_TIME = 0.08  # s of physics after placing objects, so episodes start at rest


class GraspEnv(SimEnv):
    """Grasp any object (or object 0 with ``target_object=True``) and hold it 0.1 m up.

    Actions (``action_mode="cartesian"``, Box(-1, 1, (5,))): TCP displacement dx, dy, dz
    (±3 cm per step), gripper yaw change (±0.1 rad per step) and gripper command (-1 open,
    +1 close with the force-limited squeeze); converted to joint targets by damped-least-
    squares IK. ``action_mode="joint"``: Box(-1, 1, (8,)), joint target deltas (±0.05 rad
    per step) + gripper. Control at 20 Hz, physics at 320 Hz (16 substeps, robots/arm.py).

    State (float32, ``23 + 8 * num_objects``): tcp_pos (3, m, robot base frame), tcp_quat
    (4), gripper_opening (1, m), gripper_speed (1, m/s), joint_pos (7, rad), joint_vel (7,
    rad/s), then per object: rel_pos (3, m, object centre of mass minus TCP), quat (4),
    height (1, m, centre of mass above the table).

    Observation modes: state, rgb, depth, rgbd, state_rgb (over-the-shoulder camera, default
    84×84), and ``state_rgb_wrist`` (adds the wrist camera image under "wrist"). With
    ``labels=True`` reset/step info carries "segmentation" (H×W uint8, 0 = no object, i+1 =
    object i), "object_poses" (N×7: position, quaternion wxyz) and "object_bboxes" (N×4
    pixel boxes x0, y0, x1, y1 of each object's projected 3-D box; -1 if out of view).

    Success: an object's centre of mass is ≥ 0.1 m above its resting height for 0.5 s
    (10 consecutive control steps); the episode terminates then. Each reset draws new
    objects from ``object_set`` ("train": 900 seeds, "test": 100 held out), so the scene is
    rebuilt and recompiled: ~6-8 ms of CPU per reset once the library's per-object caches
    hold the drawn objects (~+1.2 ms per object new to the process), of which MjSpec.compile
    (one thread) is ~2 ms, settling the objects ~1 ms and a new MjData ~0.4 ms; the parameter
    registry is reused across rebuilds (benchmarks/results/grasp.json, docs/MEASURED.md).

    Speed: an env step's Python (IK, observation, reward) runs between physics steps that
    evict it from the CPU caches, so its cost is mostly the number of numpy/MuJoCo calls;
    the per-step code keeps that small (one-gather state, IK on a geom-less arm twin).
    """

    control_hz = 20.0
    max_episode_steps = 100
    default_image_size = (84, 84)
    obs_camera = "shoulder"
    render_camera = "shoulder"
    randomized_cameras = ("shoulder", "wrist")
    extra_obs_modes = ("state_rgb_wrist",)
    depth_max = 2.0
    expert_entry_point = "simenvs.agents.experts.grasp:GraspExpert"

    def __init__(
        self,
        *,
        num_objects: int = 3,
        object_set: str = "train",
        action_mode: str = "cartesian",
        reward_type: str = "sparse",
        target_object: bool = False,
        n_distractors: int = 4,
        **kwargs: Any,
    ):
        if not isinstance(num_objects, (int, np.integer)) or not 1 <= num_objects <= MAX_OBJECTS:
            raise ValueError(
                f"num_objects must be an int in [1, {MAX_OBJECTS}], got {num_objects!r}"
            )
        if action_mode not in ACTION_MODES:
            raise ValueError(f"unknown action_mode {action_mode!r}; allowed: {list(ACTION_MODES)}")
        if reward_type not in REWARD_TYPES:
            raise ValueError(f"unknown reward_type {reward_type!r}; allowed: {list(REWARD_TYPES)}")
        if not isinstance(n_distractors, (int, np.integer)) or not 0 <= n_distractors <= 16:
            raise ValueError(f"n_distractors must be an int in [0, 16], got {n_distractors!r}")
        self.num_objects = int(num_objects)
        self.object_set = object_set
        self.seeds = object_seeds(object_set)  # validates the name
        self.action_mode = action_mode
        self.reward_type = reward_type
        self.target_object = bool(target_object)
        self.n_distractors = int(n_distractors)
        self.objects: list[GraspObject] = []
        self._built_ids: tuple[int, ...] | None = None
        self.target_pos = np.zeros(3)
        self.target_yaw = 0.0
        self.q_cmd = arm.HOME_QPOS.copy()
        self._hold = 0
        self._rest_z = np.zeros(self.num_objects)
        self._rest_z_list = [0.0] * self.num_objects
        super().__init__(**kwargs)

    # ---- scene ----------------------------------------------------------------------------
    def _object_ids(self, rng: np.random.Generator) -> tuple[int, ...]:
        """Library seeds of this episode's objects (``layout.object<i>`` indexes the set)."""
        n = len(self.seeds)
        idx = [self.params.get(f"layout.object{i}") for i in range(self.num_objects)]
        if any(v is None for v in idx):  # first build, before any params exist
            idx = rng.integers(0, n, self.num_objects).tolist()
        return tuple(int(self.seeds[int(v) % n]) for v in idx)

    def build_spec(self, rng: np.random.Generator) -> mujoco.MjSpec:
        ids = self._object_ids(rng)
        self.objects = [make_object(s) for s in ids]
        self._built_ids = ids
        return gscene.build_scene(self.objects, n_distractors=self.n_distractors)

    def needs_rebuild(self) -> bool:
        return self._object_ids(self.streams.layout) != self._built_ids

    def _bind_model(self) -> None:
        """Ids and addresses in the freshly compiled model (called after every compile)."""
        m = self.model
        jid = [m.joint(j).id for j in arm.ARM_JOINTS]
        self._arm_qadr = m.jnt_qposadr[jid].copy()
        self._arm_dadr = m.jnt_dofadr[jid].copy()
        fid = [m.joint(j).id for j in arm.FINGER_JOINTS]
        self._finger_qadr = m.jnt_qposadr[fid].copy()
        self._finger_dadr = m.jnt_dofadr[fid].copy()
        self._arm_act = np.array([m.actuator(a).id for a in arm.ARM_ACTUATORS])
        self._grip_act = m.actuator(arm.GRIPPER_ACTUATOR).id
        self._tcp = m.site(arm.EE_SITE).id
        self._pads = np.array([m.geom(g).id for g in arm.FINGER_GEOMS])
        self._obj_body = np.array(
            [m.body(gscene.object_body(i)).id for i in range(self.num_objects)]
        )
        self._obj_qadr = np.array(
            [m.joint(gscene.object_body(i)).qposadr[0] for i in range(self.num_objects)]
        )
        self._obj_geoms = [np.flatnonzero(m.geom_bodyid == b) for b in self._obj_body]
        self._clutter_geoms = [m.geom(f"clutter{i}").id for i in range(gscene.N_CLUTTER)]
        self._geom_obj = np.full(m.ngeom, -1, np.int64)  # geom id -> object index
        for i, g in enumerate(self._obj_geoms):
            self._geom_obj[g] = i
        # Each joint's first qpos/dof address, contiguous for the 7 arm joints.
        self._arm_q = slice(int(self._arm_qadr[0]), int(self._arm_qadr[-1]) + 1)
        self._arm_v = slice(int(self._arm_dadr[0]), int(self._arm_dadr[-1]) + 1)
        if self.__dict__.get("ik") is None:
            self.ik = DiffIK(_ik_model(), arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS)
        self._bind_views()

    def _bind_views(self) -> None:
        """Views into this MjData for the per-step code (valid until the next compile):
        building an array from an MjData attribute costs ~0.5 us, and a step reads ~20."""
        d = self._views_data = self.data
        self._v_tcp = d.site_xpos[self._tcp]
        self._v_tcp_mat = d.site_xmat[self._tcp]
        self._v_arm_q = d.qpos[self._arm_q]
        self._v_arm_v = d.qvel[self._arm_v]
        fq, fv = self._finger_qadr, self._finger_dadr
        self._v_finger_q = d.qpos[fq[0] : fq[-1] + 1] if _consecutive(fq) else None
        self._v_finger_v = d.qvel[fv[0] : fv[-1] + 1] if _consecutive(fv) else None
        b = self._obj_body
        contiguous = _consecutive(b)
        self._v_obj_com = d.xipos[b[0] : b[-1] + 1] if contiguous else None
        self._v_obj_z = self._v_obj_com[:, 2] if contiguous else None  # a view
        self._v_obj_quat = d.xquat[b[0] : b[-1] + 1] if contiguous else None
        acts = self._arm_act
        self._v_arm_ctrl = d.ctrl[acts[0] : acts[-1] + 1] if _consecutive(acts) else None
        self._v_ctrl = d.ctrl
        self._quat_buf = np.empty(4)
        self._bind_gather()

    def _bind_gather(self) -> None:
        """Index the state's sources in one flat view of MjData, for a one-call gather.

        Why: a step's Python runs between physics steps that evict it from the CPU caches,
        where each numpy call costs several us; ``state_obs`` is then ~5 calls, not ~15.
        MjData keeps qpos, qvel, xipos, xquat and site_xpos in one float64 buffer, so one
        view spans them; if this build lays them out otherwise the per-array path is used.
        """
        d, n = self.data, self.num_objects
        srcs = (qpos, qvel, xipos, xquat, site_xpos) = (
            d.qpos, d.qvel, d.xipos, d.xquat, d.site_xpos
        )  # fmt: skip
        self._gather = None
        addr = [a.ctypes.data for a in srcs]  # .ctypes builds an object: read each once
        start = min(addr)
        end = max(x + a.nbytes for x, a in zip(addr, srcs))
        if (
            any(a.dtype != np.float64 or not a.flags.c_contiguous for a in srcs)
            or any((x - start) % 8 for x in addr)
            or end - start > 1 << 30
        ):
            return
        lowest = srcs[addr.index(start)].reshape(-1)  # a view (C-contiguous)
        if lowest.ctypes.data != start:
            return
        flat = np.lib.stride_tricks.as_strided(
            lowest, shape=((end - start) // 8,), strides=(8,), writeable=False
        )
        offset = {id(a): (x - start) // 8 for x, a in zip(addr, srcs)}

        def at(arr: np.ndarray, *flat_index: int) -> list[int]:
            o = offset[id(arr)]
            return [o + int(k) for k in flat_index]

        tcp3 = 3 * self._tcp
        fq, fv = self._finger_qadr, self._finger_dadr
        idx = at(site_xpos, tcp3, tcp3 + 1, tcp3 + 2) + [0] * 4  # quat: mju_mat2Quat
        idx += at(qpos, fq[0]) + at(qvel, fv[0])
        idx += at(qpos, *self._arm_qadr) + at(qvel, *self._arm_dadr)
        for body in self._obj_body:
            com = at(xipos, 3 * body, 3 * body + 1, 3 * body + 2)
            idx += com + at(xquat, *range(4 * body, 4 * body + 4)) + com[2:]
        tail = 23 + 8 * n  # the second finger's qpos and qvel, added to slots 7 and 8
        idx += at(qpos, fq[1]) + at(qvel, fv[1])
        g = np.zeros(len(idx))
        self._gather = (flat, np.array(idx, np.intp), g)
        self._g_quat = g[3:7]
        self._g_finger = g[7:9]
        self._g_finger2 = g[tail : tail + 2]
        self._g_rel = g[23:tail].reshape(n, 8)[:, 0:3]
        self._g_height = g[23:tail].reshape(n, 8)[:, 7]
        self._g_tcp = g[0:3]
        self._g_state = g[:tail]

    def _check_views(self) -> None:
        if self._views_data is not self.data:  # someone swapped MjData (copies, pickling)
            self._bind_views()

    def _obj_com(self) -> np.ndarray:
        v = self._v_obj_com
        return v if v is not None else self.data.xipos[self._obj_body]

    # ---- parameters -----------------------------------------------------------------------
    def param_defs(self) -> list[ParamDef]:
        """The task's parameters for the freshly compiled model: definitions built once per
        env (none depends on the model), each given this model's ``apply`` (~1 us a copy;
        building them anew after every recompile cost ~0.5 ms)."""
        self._bind_model()
        templates = self.__dict__.get("_param_templates")
        if templates is None:
            templates = self._param_templates = self._build_param_templates()
        applies = self._param_applies()
        return [t.with_apply(applies[t.name]) if t.name in applies else t for t in templates]

    def _param_applies(self) -> dict[str, Any]:
        """Parameter name -> ``apply`` closing over this model's ids and nominal values (the
        ``layout.object<i>`` definitions have none: ``build_spec`` reads them)."""
        m = self.model
        mass0 = m.body_mass[self._obj_body].copy()
        inertia0 = m.body_inertia[self._obj_body].copy()
        kp0 = m.actuator_gainprm[self._arm_act, 0].copy()
        damp0 = m.dof_damping[self._arm_dadr].copy()
        grip0 = m.actuator_forcerange[self._grip_act].copy()
        bodies, obj_geoms, pads = self._obj_body, self._obj_geoms, self._pads
        arm_act, arm_dof, grip = self._arm_act, self._arm_dadr, self._grip_act

        def set_mass(mm, v):
            s = np.asarray(v, float)
            mm.body_mass[bodies] = mass0 * s
            mm.body_inertia[bodies] = inertia0 * s[:, None]

        def set_obj_friction(mm, v):
            for g, f in zip(obj_geoms, np.atleast_1d(v)):
                mm.geom_friction[g, 0] = f

        def set_gain(mm, v):
            mm.actuator_gainprm[arm_act, 0] = kp0 * v
            mm.actuator_biasprm[arm_act, 1] = -kp0 * v

        applies: dict[str, Any] = {
            "dynamics.object_mass": set_mass,
            "dynamics.object_friction": set_obj_friction,
            "dynamics.finger_friction": lambda mm, v: mm.geom_friction.__setitem__((pads, 0), v),
            "dynamics.joint_damping": lambda mm, v: mm.dof_damping.__setitem__(arm_dof, damp0 * v),
            "dynamics.actuator_gain": set_gain,
            "dynamics.grip_force": lambda mm, v: mm.actuator_forcerange.__setitem__(
                grip, grip0 * v
            ),
        }
        for i, g in enumerate(self._clutter_geoms):
            applies[f"layout.clutter{i}.pos"] = lambda mm, v, g=g: mm.geom_pos.__setitem__(
                (g, slice(0, 2)), v
            )
            applies[f"layout.clutter{i}.size"] = lambda mm, v, g=g: _set_box(mm, g, v)
        return applies

    def _build_param_templates(self) -> list[ParamDef]:
        """The definitions, without ``apply`` (see ``_param_applies``)."""
        n = self.num_objects
        defs = [
            ParamDef(
                "dynamics.object_mass",
                np.ones(n),
                0.2,
                3.0,
                shape=(n,),
                unit="x",
                doc="scale of each object's mass and inertia (nominal 0.05-0.4 kg)",
            ),
            ParamDef(
                "dynamics.object_friction",
                np.full(n, 0.8),
                0.1,
                2.0,
                shape=(n,),
                doc="sliding friction of each object's geoms",
            ),
            ParamDef(
                "dynamics.finger_friction",
                1.0,
                0.1,
                2.0,
                doc="sliding friction of the finger pads (a contact uses the larger one)",
            ),
            ParamDef(
                "dynamics.joint_damping",
                1.0,
                0.1,
                10.0,
                unit="x",
                doc="scale of the arm joints' passive damping",
            ),
            ParamDef(
                "dynamics.actuator_gain",
                1.0,
                0.3,
                3.0,
                unit="x",
                doc="scale of the arm joint servos' stiffness",
            ),
            ParamDef(
                "dynamics.grip_force",
                1.0,
                0.3,
                2.0,
                unit="x",
                doc="scale of the gripper's force limit (nominal 35 N per finger)",
            ),
        ]
        # An index, not a categorical over library seeds: binding checks every categorical
        # choice against the allowed ones (quadratic: ~20 ms per reset for 900 choices).
        k = len(self.seeds)
        for i in range(n):
            defs.append(
                ParamDef(
                    f"layout.object{i}",
                    i % k,
                    0,
                    k,
                    dtype=int,
                    doc=f"index into the {self.object_set} set ({k} objects; {k} wraps "
                    "to 0): object = library seed seeds[index]",
                )
            )
        for i in range(gscene.N_CLUTTER):
            (x0, x1), (y0, y1) = gscene.CLUTTER_REGION
            defs += [
                ParamDef(
                    f"layout.clutter{i}.pos",
                    np.array([0.95, (-0.55, 0.55, -0.35)[i % 3]]),
                    [x0, y0],
                    [x1, y1],
                    shape=(2,),
                    unit="m",
                ),
                ParamDef(
                    f"layout.clutter{i}.size",
                    np.full(3, 0.05),
                    0.015,
                    0.12,
                    shape=(3,),
                    unit="m",
                    doc="half-sizes; the item stands on the table",
                ),
            ]
        return defs

    def randomization_presets(self) -> dict[str, dict]:
        k = len(self.seeds)
        layout: dict[str, Any] = {f"layout.object{i}": [0, k] for i in range(self.num_objects)}
        layout |= {
            "layout.clutter*.pos": {"dist": "uniform", "low": [0.85, -0.65], "high": [1.05, 0.65]},
            "layout.clutter*.size": [0.02, 0.09],
        }
        default = {
            **layout,
            "dynamics.object_mass": [0.7, 1.25],  # heaviest object 0.5 kg
            "dynamics.object_friction": [0.4, 1.2],
            "dynamics.finger_friction": [0.7, 1.3],
            "dynamics.joint_damping": [0.5, 2.0],
            "dynamics.actuator_gain": [0.8, 1.25],
            "dynamics.grip_force": [0.8, 1.2],
            "dynamics.action_latency": {"dist": "categorical", "choices": [0, 1]},
        }
        wide = {
            **default,
            "dynamics.object_mass": [0.5, 1.25],
            "dynamics.object_friction": [0.2, 1.5],
            "dynamics.finger_friction": [0.5, 1.5],
            "dynamics.joint_damping": [0.25, 4.0],
            "dynamics.actuator_gain": [0.6, 1.5],
            "dynamics.grip_force": [0.6, 1.4],
            "dynamics.action_latency": {"dist": "categorical", "choices": [0, 1, 2]},
        }
        return {"default": default, "wide": wide}

    # ---- episode --------------------------------------------------------------------------
    def reset_info(self) -> dict[str, Any]:
        return self.labels_info() if self.labels else {}

    def reset_task(self, rng: np.random.Generator) -> None:
        m, d = self.model, self.data
        q0 = np.clip(arm.HOME_QPOS + rng.uniform(-0.05, 0.05, 7), arm.JOINT_LOWER, arm.JOINT_UPPER)
        d.qpos[self._arm_q] = q0
        d.qpos[self._finger_qadr] = GRIP_OPEN
        d.ctrl[self._arm_act] = q0
        d.ctrl[self._grip_act] = GRIP_OPEN
        self._place_objects(rng)
        mujoco.mj_step(m, d, nstep=max(1, round(SETTLE_TIME / m.opt.timestep)))
        mujoco.mj_forward(m, d)
        self._rest_z = d.xipos[self._obj_body, 2].copy()
        self._rest_z_list = self._rest_z.tolist()
        self.q_cmd = q0.copy()
        pos, mat = self.ik.fk(q0)
        self.target_pos = pos
        self.target_yaw = float(np.arctan2(mat[1, 1], mat[0, 1]))
        self._hold = 0

    def _place_objects(self, rng: np.random.Generator) -> None:
        """Random non-overlapping footprints (bounding circles) in the object region; an
        object that finds no free spot is dropped from above the others."""
        d = self.data
        (x0, x1), (y0, y1) = gscene.OBJECT_REGION
        placed: list[tuple[np.ndarray, float]] = []
        for i, obj in enumerate(self.objects):
            r = obj.radius
            xy, z = None, gscene.TABLE_TOP + 0.001
            for _ in range(100):
                cand = rng.uniform([x0, y0], [x1, y1])
                if all(np.linalg.norm(cand - p) >= r + rp + 0.01 for p, rp in placed):
                    xy = cand
                    break
            if xy is None:
                xy = rng.uniform([x0, y0], [x1, y1])
                z += 0.12 * (1 + len(placed))
            placed.append((xy, r))
            yaw = rng.uniform(-np.pi, np.pi)
            a = self._obj_qadr[i]
            d.qpos[a : a + 3] = (xy[0], xy[1], z)
            d.qpos[a + 3 : a + 7] = (np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2))

    def neutral_action(self) -> np.ndarray:
        a = np.zeros(self.action_space.shape, dtype=np.float64)
        a[-1] = -1.0  # gripper open
        return a

    # ---- actions --------------------------------------------------------------------------
    def action_space_def(self) -> spaces.Box:
        n = 5 if self.action_mode == "cartesian" else 8
        return spaces.Box(-1.0, 1.0, (n,), np.float32)

    def action_layout(self) -> list[tuple[str, str, float, float]]:
        grip = ("gripper_target", "m", GRIP_OPEN, GRIP_CLOSED)
        if self.action_mode == "cartesian":
            return [
                ("dx", "m", -MAX_DPOS, MAX_DPOS),
                ("dy", "m", -MAX_DPOS, MAX_DPOS),
                ("dz", "m", -MAX_DPOS, MAX_DPOS),
                ("dyaw", "rad", -MAX_DYAW, MAX_DYAW),
                grip,
            ]
        return [(f"d{j}", "rad", -MAX_DQ, MAX_DQ) for j in arm.ARM_JOINTS] + [grip]

    def apply_action(self, action: np.ndarray) -> None:
        self._check_views()
        if self.action_mode == "cartesian":
            # Python floats: the same IEEE operations as the array form, in fewer numpy calls
            ax, ay, az, ayaw, grip = action.tolist()
            (x0, x1), (y0, y1), (z0, z1) = _WS_LO_HI
            tx, ty, tz = self.target_pos.tolist()
            t = np.array(
                (
                    min(max(tx + ax * MAX_DPOS, x0), x1),
                    min(max(ty + ay * MAX_DPOS, y0), y1),
                    min(max(tz + az * MAX_DPOS, z0), z1),
                )
            )
            self.target_pos = t
            self.target_yaw = min(max(self.target_yaw + ayaw * MAX_DYAW, -YAW_LIMIT), YAW_LIMIT)
            self.q_cmd = self.ik.solve(self.q_cmd, t, yaw_down_quat(self.target_yaw))
        else:
            self.q_cmd = np.clip(self.q_cmd + action[:7] * MAX_DQ, arm.JOINT_LOWER, arm.JOINT_UPPER)
            grip = float(action[-1])
        if self._v_arm_ctrl is not None:
            self._v_arm_ctrl[:] = self.q_cmd
        else:
            self.data.ctrl[self._arm_act] = self.q_cmd
        self._v_ctrl[self._grip_act] = GRIP_OPEN + 0.5 * (grip + 1.0) * (GRIP_CLOSED - GRIP_OPEN)

    # ---- observations ---------------------------------------------------------------------
    def state_space(self) -> spaces.Box:
        return spaces.Box(-np.inf, np.inf, (23 + 8 * self.num_objects,), np.float32)

    def state_layout(self) -> list[tuple[str, int, str]]:
        out = [
            ("tcp_pos", 3, "m"),
            ("tcp_quat", 4, "1"),
            ("gripper_opening", 1, "m"),
            ("gripper_speed", 1, "m/s"),
            ("joint_pos", 7, "rad"),
            ("joint_vel", 7, "rad/s"),
        ]
        for i in range(self.num_objects):
            out += [
                (f"object{i}_rel_pos", 3, "m"),
                (f"object{i}_quat", 4, "1"),
                (f"object{i}_height", 1, "m"),
            ]
        return out

    def state_obs(self) -> np.ndarray:
        self._check_views()
        if self._gather is not None:
            flat, idx, g = self._gather
            flat.take(idx, None, g)  # the method: np.take wraps it in Python
            mujoco.mju_mat2Quat(self._g_quat, self._v_tcp_mat)
            np.add(self._g_finger, self._g_finger2, self._g_finger)
            np.subtract(self._g_rel, self._g_tcp, self._g_rel)
            if gscene.TABLE_TOP:
                self._g_height -= gscene.TABLE_TOP
            return self._g_state.astype(np.float32)
        return self._state_obs_arrays()

    def _state_obs_arrays(self) -> np.ndarray:
        """``state_obs`` read array by array (the reference for the gathered path)."""
        n = self.num_objects
        out = np.empty(23 + 8 * n, np.float32)
        tcp = self._v_tcp
        out[0:3] = tcp
        q = self._quat_buf
        mujoco.mju_mat2Quat(q, self._v_tcp_mat)
        out[3:7] = q
        fq, fv = self._v_finger_q, self._v_finger_v
        d = self.data
        out[7] = (fq if fq is not None else d.qpos[self._finger_qadr]).sum()
        out[8] = (fv if fv is not None else d.qvel[self._finger_dadr]).sum()
        out[9:16] = self._v_arm_q
        out[16:23] = self._v_arm_v
        obj = out[23:].reshape(n, 8)
        com = self._obj_com()
        np.subtract(com, tcp, out=obj[:, 0:3])
        quat = self._v_obj_quat
        obj[:, 3:7] = quat if quat is not None else d.xquat[self._obj_body]
        obj[:, 7] = com[:, 2]
        if gscene.TABLE_TOP:
            obj[:, 7] -= gscene.TABLE_TOP
        return out

    def extra_observation_space(self, mode: str) -> spaces.Space:
        h, w = self.image_size
        img = spaces.Box(0, 255, (h, w, 3), np.uint8)
        return spaces.Dict({"state": self.state_space(), "image": img, "wrist": img})

    def extra_obs(self, mode: str) -> Any:
        return {
            "state": self.noisy_state(),
            "image": self.camera_obs("rgb"),
            "wrist": self.camera_obs("rgb", camera="wrist"),
        }

    # ---- task -----------------------------------------------------------------------------
    def lift_heights(self) -> np.ndarray:
        """Each object's centre-of-mass height above where it rested at the episode start."""
        self._check_views()
        return self._obj_com()[:, 2] - self._rest_z

    def grasped(self) -> np.ndarray:
        """Per object: touched by both finger pads."""
        d = self.data
        touch = np.zeros((self.num_objects, 2), bool)
        if d.ncon:
            g = d.contact.geom[: d.ncon]
            for k, pad in enumerate(self._pads):
                other = np.where(g[:, 0] == pad, g[:, 1], np.where(g[:, 1] == pad, g[:, 0], -1))
                obj = self._geom_obj[other[other >= 0]]
                touch[obj[obj >= 0], k] = True
        return touch.all(axis=1)

    def evaluate(self) -> tuple[float, bool, dict]:
        self._check_views()
        # a few objects: Python floats beat numpy calls (~1 us each) for these reductions
        vz = self._v_obj_z
        z = (vz if vz is not None else self.data.xipos[self._obj_body, 2]).tolist()
        lifts = [zi - r for zi, r in zip(z, self._rest_z_list)]
        max_lift = lifts[0] if self.target_object else max(lifts)
        self._hold = self._hold + 1 if max_lift >= LIFT_HEIGHT else 0
        success = self._hold * self.dt >= HOLD_TIME - 1e-9
        low = gscene.TABLE_TOP - 0.05
        n_off = sum(zi < low for zi in z)
        lost = z[0] < low if self.target_object else n_off == self.num_objects
        info: dict[str, Any] = {
            "is_success": success,
            "max_lift": max_lift,
            "objects_off_table": n_off,
            "objects_lost": lost,
        }
        if self.reward_type == "sparse":
            reward = float(success)
        else:
            com = self._obj_com()
            lift = com[:, 2] - self._rest_z
            reward = self._dense_reward(lift, com) + (5.0 if success else 0.0)
        if self.labels:
            info.update(self.labels_info())
        return reward, success or lost, info

    def _dense_reward(self, lift: np.ndarray, com: np.ndarray) -> float:
        """Reach (TCP to the nearest/target object) + grasp (both pads touch it) + lift."""
        tcp = self.data.site_xpos[self._tcp]
        dist = np.linalg.norm(com - tcp, axis=1)
        i = 0 if self.target_object else int(np.argmin(dist))
        reach = 1.0 - np.tanh(10.0 * dist[i])
        grasp = float(self.grasped()[i])
        lifted = float(np.clip(lift[i] / LIFT_HEIGHT, 0.0, 1.0))
        return 0.25 * reach + 0.25 * grasp + 0.5 * lifted * grasp

    # ---- labels ---------------------------------------------------------------------------
    def labels_info(self) -> dict[str, np.ndarray]:
        """Segmentation, 6-DoF poses and projected 2-D boxes for the observation camera."""
        h, w = self.image_size
        seg = self.render_camera_image(self.obs_camera, w, h, "segmentation")
        return object_labels(
            self.model,
            self.data,
            self.obs_camera,
            seg,
            self._geom_obj,
            self._obj_body,
            self.objects,
            w,
            h,
        )


@functools.cache
def _ik_model() -> mujoco.MjModel:
    """The scene's arm as a kinematic twin for IK: the same bodies, joints, masses and
    inertias (so the same subtree centres of mass and Jacobians, bit for bit; tested), but
    no geoms. IK needs only the kinematic chain: its forward kinematics then skip the
    arm's ~30 geoms, and one model serves every episode (no rebuild after a recompile)."""
    spec = arm.build_arm_spec(table=False)
    full = spec.copy().compile()
    for g in list(spec.geoms):
        spec.delete(g)
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    for body in spec.bodies[1:]:
        ref = full.body(body.name)
        body.explicitinertial = True
        body.mass, body.ipos = float(ref.mass[0]), ref.ipos.copy()
        body.iquat, body.inertia = ref.iquat.copy(), ref.inertia.copy()
    twin = spec.compile()
    for name in ("body_mass", "body_ipos", "body_iquat", "body_inertia"):
        getattr(twin, name)[:] = getattr(full, name)  # exactly the compiled values
    return twin


def _consecutive(ids: np.ndarray) -> bool:
    """``ids`` are k, k+1, k+2...: a slice views them (plain Python: runs once per compile,
    where numpy's per-call cost is what counts)."""
    xs = ids.tolist()
    return xs == list(range(xs[0], xs[0] + len(xs))) if xs else False


def _set_box(m: Any, g: int, half: np.ndarray) -> None:
    m.geom_size[g] = half
    m.geom_pos[g, 2] = gscene.TABLE_TOP + half[2]
