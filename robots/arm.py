"""A 7-DoF Panda-like arm with a parallel-jaw gripper, built as an ``MjSpec`` from primitives.

Kinematics follow the Franka Panda (the body frames of MuJoCo Menagerie's model: link
offsets 0.333 / 0.316 / 0.0825 / 0.384 / 0.088 / 0.107 m, the Panda joint limits and
torque limits), so the workspace, reach and joint-limit behaviour are those of a real arm.
Links collide (from the elbow on) as capsules with Panda-like masses and render as
low-poly meshes (cheap for software rendering); the arm is gravity-compensated (as the
real robot's controller is) and position-servoed with Menagerie's PD gains and the Panda's
torque limits.

The gripper is two slide fingers coupled by an equality constraint and driven through a
tendon by one force-limited position servo: closing commands a target slightly past
"fully closed", so on an object the servo saturates and the fingers squeeze with a
constant force (``grip_force`` per finger), like the Panda hand's force-controlled grasp.
Finger pads use condim 4 (torsional friction) and stiff contacts; together with
``configure_physics`` (3.125 ms steps, elliptic cone, impratio 3) and a finger drive with
Panda-like reflected inertia a 0.5 kg object does not slip out of the closed gripper
(measured in tests/test_arm.py across the friction range).

Why a builder rather than an XML file: the grasp env attaches the arm into a scene it
generates per episode, and tests build it standalone; both want the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np
from scipy.spatial import ConvexHull

__all__ = [
    "ARM_JOINTS",
    "ARM_ACTUATORS",
    "GRIPPER_ACTUATOR",
    "FINGER_JOINTS",
    "FINGER_GEOMS",
    "ARM_BODIES",
    "EE_SITE",
    "HOME_QPOS",
    "JOINT_LOWER",
    "JOINT_UPPER",
    "JOINT_KP",
    "JOINT_KV",
    "JOINT_FORCE_LIMIT",
    "FINGER_OPEN",
    "FINGER_CLOSED_TARGET",
    "GROUP_ARM",
    "GROUP_WORLD",
    "PAD_SOLREF",
    "PAD_SOLIMP",
    "PAD_MARGIN",
    "ArmConfig",
    "add_arm",
    "configure_physics",
    "build_arm_spec",
    "DEFAULT_TIMESTEP",
    "NONCOLLIDING_LINKS",
    "convex_parts_mesh",
]

ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
ARM_ACTUATORS = tuple(f"act_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("finger_left", "finger_right")
FINGER_GEOMS = ("pad_left", "pad_right")
GRIPPER_ACTUATOR = "act_gripper"
ARM_BODIES = (
    "link0",
    "link1",
    "link2",
    "link3",
    "link4",
    "link5",
    "link6",
    "link7",
    "hand",
    "finger_left",
    "finger_right",
)
EE_SITE = "tcp"  # tool centre point: between the finger pads, near the tips

HOME_QPOS = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 1.9, -0.785398])
JOINT_LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973])
JOINT_UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973])
JOINT_KP = np.array([4500.0, 4500.0, 3500.0, 3500.0, 2000.0, 2000.0, 2000.0])
JOINT_KV = np.array([450.0, 450.0, 350.0, 350.0, 200.0, 200.0, 200.0])
JOINT_FORCE_LIMIT = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])  # N·m (Panda)
LINK_MASS = np.array([0.63, 4.97, 0.646, 3.23, 3.59, 1.23, 1.67, 0.735])  # link0..link7 (Panda)

FINGER_OPEN = 0.04  # m per finger: 8 cm stroke like the Panda hand
FINGER_CLOSED_TARGET = -0.01  # past closed, so the servo saturates on the object

# Stiff pad contacts (solmix makes them win the mix against any object's defaults): soft
# default contacts let a squeezed object sink ~5 mm into the pads and rock out of the grasp.
# MuJoCo raises a time constant below 2 timesteps to 2 timesteps (6.25 ms at the default
# 3.125 ms step): the pads are as stiff as the step allows.
PAD_SOLREF = (0.004, 1.0)
PAD_SOLIMP = (0.95, 0.99, 0.001, 0.5, 2.0)
# Contacts start 1 mm before touching: with stiff contacts a squeezed object sits at ~0 mm
# penetration, where a pad's contact can drop out for one step and the unbalanced squeeze
# spins the object (measured: hull objects flung out of the grasp).
PAD_MARGIN = 0.001

# Collision bits: the arm touches world/objects but not itself.
GROUP_ARM = (2, 1)  # (contype, conaffinity)
GROUP_WORLD = (1, 3)
# Links that never collide: the base, shoulder and upper arm cannot reach the table top or
# the objects (Panda joint limits, base on the table). Every collidable geom costs broad
# phase work in each physics step (measured: ~8 % of mj_step with links 1-5 dropped).
NONCOLLIDING_LINKS = ("link0", "link1", "link2", "link3")

# 16 physics steps per 20 Hz control step. Why not the 2 ms MuJoCo grasping setups often
# use: with the finger drive's reflected inertia (ArmConfig.finger_armature) the grasp holds
# as well at 3.125 ms and each control step costs 16 mj_step instead of 25 (measured slip of
# a lifted 0.5 kg box/cylinder/sphere <= 2.5 mm at finger friction 0.5-1.3; 3.57 ms steps
# reach 6.7 mm, 4.17 ms and 5 ms steps 1-15 cm: contacts too soft).
DEFAULT_TIMESTEP = 0.003125

_CAPS = mujoco.mjtGeom.mjGEOM_CAPSULE
_BOX = mujoco.mjtGeom.mjGEOM_BOX
_CYL = mujoco.mjtGeom.mjGEOM_CYLINDER
_SPH = mujoco.mjtGeom.mjGEOM_SPHERE

# (parent, name, pos, quat) of the Panda body tree, Menagerie frames.
_H = float(np.sqrt(0.5))
_TREE = (
    ("link0", "link1", (0, 0, 0.333), (1, 0, 0, 0)),
    ("link1", "link2", (0, 0, 0), (_H, -_H, 0, 0)),
    ("link2", "link3", (0, -0.316, 0), (_H, _H, 0, 0)),
    ("link3", "link4", (0.0825, 0, 0), (_H, _H, 0, 0)),
    ("link4", "link5", (-0.0825, 0.384, 0), (_H, -_H, 0, 0)),
    ("link5", "link6", (0, 0, 0), (_H, _H, 0, 0)),
    ("link6", "link7", (0.088, 0, 0), (_H, _H, 0, 0)),
)
# Capsules per link (fromto, radius): rough Panda collision hull; the first carries the mass.
_LINK_GEOMS = {
    "link0": [((-0.04, 0, 0.0, -0.04, 0, 0.14), 0.065)],
    "link1": [((0, 0, -0.19, 0, 0, -0.03), 0.065)],
    "link2": [((0, 0, -0.06, 0, 0, 0.06), 0.06), ((0, -0.03, 0, 0, -0.2, 0), 0.06)],
    "link3": [((0, 0, -0.15, 0, 0, -0.02), 0.055), ((0, 0, 0, 0.08, 0, 0), 0.055)],
    "link4": [((0, 0, -0.05, 0, 0, 0.05), 0.055), ((0, 0, 0, -0.08, 0.1, 0), 0.055)],
    "link5": [((0, 0.02, -0.26, 0, 0.06, -0.12), 0.05), ((0, 0, -0.1, 0, 0, 0.0), 0.055)],
    "link6": [((0, 0, -0.04, 0, 0, 0.02), 0.055), ((0.02, 0, 0, 0.088, 0, 0), 0.045)],
    "link7": [((0, 0, -0.02, 0, 0, 0.08), 0.045)],
}


@dataclass(frozen=True)
class ArmConfig:
    """Physical constants that a task may want to change (defaults are Panda-like)."""

    grip_force: float = 35.0  # N squeezed by each finger once the servo saturates
    gripper_kp: float = 4000.0  # N/m on the tendon (mean finger opening)
    # Closing speed comes from passive finger damping (integrated implicitly), not from the
    # servo's kv: a velocity term inside a force-clamped servo chatters at these step sizes.
    finger_damping: float = 250.0  # N·s/m per finger: full stroke in ~0.27 s at grip force
    joint_damping: float = 1.0  # N·m·s/rad passive damping on every arm joint
    joint_armature: float = 0.1  # kg·m² reflected rotor inertia
    finger_friction: float = 1.0
    # kg reflected inertia of the finger drive (a screw drive like the Panda hand's). With a
    # light finger (0.1 kg) the squeezing pads chatter at steps above 2 ms and a held object
    # slides out; 0.7-1.5 kg holds at 3.125 ms. Closing speed is unchanged (damping-limited).
    finger_armature: float = 1.0
    gravity_compensation: bool = True


def configure_physics(spec: mujoco.MjSpec, timestep: float = DEFAULT_TIMESTEP) -> None:
    """Solver settings under which grasps hold (measured, see module docstring).

    3.125 ms steps, elliptic friction cone and impratio 3, with the stiff pad contacts and
    finger drive inertia set in ``add_arm``: a 0.5 kg object lifted at 0.2-0.6 m/s slips
    < 5 mm for finger friction 0.5-1.3. Measured alternatives that failed: 4.17 ms or 5 ms
    steps (contacts too soft: objects rock out of the grasp, even with noslip iterations),
    impratio 10 with stiff pads (solver blow-ups when a cylinder spins in the grasp),
    impratio 10 with default contact softness (1-2 cm slip).

    Integrator "implicitfast" (velocity derivatives of actuators and damping, no Coriolis
    terms): ~25-30 % cheaper per step than "implicit" here, same grasp slip, and no
    divergence in 200 drops of light tumbling objects (5 per episode, spun at up to
    ~60 rad/s, MuJoCo 4.0.1).
    """
    spec.compiler.degree = False
    opt = spec.option
    opt.timestep = timestep
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
    opt.impratio = 3.0
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON
    opt.iterations = 50
    opt.ls_iterations = 20
    # Objects at rest sleep (skipped by collision and solver) until something touches them;
    # the actuated arm never does. About 1.5-2x faster physics with a few resting objects.
    opt.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP


def _capsule_hull(radius: float, half_length: float, sides: int = 8) -> np.ndarray:
    """Vertices of a low-poly capsule along z (octagonal rings, bevelled caps)."""
    ang = np.arange(sides) * (2 * np.pi / sides)
    ring = np.c_[np.cos(ang), np.sin(ang)]
    rings = []
    for z, r in ((half_length, radius), (half_length + 0.7 * radius, 0.7 * radius)):
        rings += [np.c_[ring * r, np.full(sides, z)], np.c_[ring * r, np.full(sides, -z)]]
    tips = np.array([[0, 0, half_length + radius], [0, 0, -half_length - radius]])
    return np.concatenate(rings + [tips])


def _capsule(body, fromto, radius, mass, collide=True) -> np.ndarray:
    """A collision capsule (hidden group 3); returns its low-poly visual twin's vertices in
    the body frame, for the body's one visual mesh (``_add_visual``).

    Why: llvmpipe's cost is per vertex; a primitive capsule draws ~5x the triangles of
    this mesh (measured: 20 capsules ~1 ms per 84x84 frame, 20 meshes ~0.3 ms)."""
    ct, ca = GROUP_ARM if collide else (0, 0)
    body.add_geom(
        type=_CAPS,
        fromto=list(fromto),
        size=[radius, 0, 0],
        contype=ct,
        conaffinity=ca,
        group=3,
        mass=mass,
        condim=3,
        rgba=[0.92, 0.92, 0.92, 1.0],
    )
    a, b = np.asarray(fromto[:3], float), np.asarray(fromto[3:], float)
    axis = b - a
    half = 0.5 * float(np.linalg.norm(axis))
    quat = np.array([1.0, 0, 0, 0])
    if half > 1e-9:
        mujoco.mju_quatZ2Vec(quat, axis / (2 * half))
    rot = np.empty(9)
    mujoco.mju_quat2Mat(rot, quat)
    return _capsule_hull(radius, half) @ rot.reshape(3, 3).T + (a + b) / 2


def _box_vertices(half, pos) -> np.ndarray:
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
    return corners * np.asarray(half, float) + np.asarray(pos, float)


def _hull_faces(verts: np.ndarray) -> np.ndarray:
    """Outward-oriented triangles of the convex hull of ``verts`` (indices into it)."""
    hull = ConvexHull(verts)
    tri = hull.simplices.copy()
    v0 = verts[tri[:, 0]]
    a, b = (verts[tri[:, 1]] - v0).T, (verts[tri[:, 2]] - v0).T
    # np.cross's arithmetic (a1 b2 - a2 b1, ...), without its axis handling (~35 us a call)
    n = np.column_stack(
        (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])
    )
    flip = np.einsum("ij,ij->i", n, hull.equations[:, :3]) < 0
    tri[flip] = tri[flip][:, ::-1]
    return tri


def convex_parts_mesh(parts) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, triangles) of one render mesh made of convex ``parts`` (vertex arrays in
    one frame), each part its own closed hull: a union to draw, not to collide with."""
    verts, faces, k = [], [], 0
    for v in parts:
        verts.append(v)
        faces.append(_hull_faces(v) + k)
        k += len(v)
    return np.concatenate(verts), np.concatenate(faces)


def _add_visual(spec, body, name, parts, material="", rgba=(0.92, 0.92, 0.92, 1.0), group=1):
    """One visual mesh (no collision, no mass) for convex ``parts`` (vertex arrays in the
    body frame): each geom drawn costs llvmpipe ~10 us per frame, so a link's capsules
    render as one mesh (measured: 11 fewer draws, ~0.1 ms less per 84x84 frame)."""
    verts, faces = convex_parts_mesh(parts)
    spec.add_mesh(name=name, uservert=verts.ravel().tolist(), userface=faces.ravel().tolist())
    g = body.add_geom(
        name=name,
        type=mujoco.mjtGeom.mjGEOM_MESH,
        meshname=name,
        contype=0,
        conaffinity=0,
        group=group,
        density=0.0,
    )
    if material:
        g.material = material
    else:
        g.rgba = list(rgba)
    return g


def add_arm(
    spec: mujoco.MjSpec,
    parent: mujoco.MjsBody | None = None,
    pos=(0.0, 0.0, 0.0),
    config: ArmConfig | None = None,
    material: str = "",
    finger_material: str = "",
) -> None:
    """Add the arm, gripper, actuators and the ``tcp`` site to ``spec`` under ``parent``.

    Names are fixed (``joint1``..``joint7``, ``finger_left``/``right``, ``act_joint*``,
    ``act_gripper``, site ``tcp``): one arm per scene. ``material`` colours the links,
    ``finger_material`` the fingers (e.g. materials from ``scene.add_random_texture``).
    """
    cfg = config or ArmConfig()
    parent = parent if parent is not None else spec.worldbody
    gc = 1.0 if cfg.gravity_compensation else 0.0
    deg = 180.0 / np.pi if spec.compiler.degree else 1.0  # joint ranges follow the compiler
    bodies = {"link0": parent.add_body(name="link0", pos=list(pos))}
    for i, (par, name, bpos, quat) in enumerate(_TREE):
        b = bodies[par].add_body(name=name, pos=list(bpos), quat=list(quat), gravcomp=gc)
        lo, hi = JOINT_LOWER[i] * deg, JOINT_UPPER[i] * deg
        b.add_joint(
            name=ARM_JOINTS[i],
            type=mujoco.mjtJoint.mjJNT_HINGE,
            axis=[0, 0, 1],
            range=[lo, hi],
            limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            damping=[cfg.joint_damping, 0, 0],
            armature=cfg.joint_armature,
        )
        bodies[name] = b
    for k, (name, geoms) in enumerate(_LINK_GEOMS.items()):
        parts = []
        for j, (fromto, r) in enumerate(geoms):
            mass = LINK_MASS[k] if j == 0 else 0.05
            collide = name not in NONCOLLIDING_LINKS
            parts.append(_capsule(bodies[name], fromto, r, mass, collide))
        _add_visual(spec, bodies[name], f"{name}_vis", parts, material)
    # Hand: rotated -45° about z like the Panda flange; fingers slide along the hand's y.
    hand = bodies["link7"].add_body(
        name="hand", pos=[0, 0, 0.107], quat=[0.9238795, 0, 0, -0.3826834], gravcomp=gc
    )
    ct, ca = GROUP_ARM
    palm = hand.add_geom(
        name="palm",
        type=_BOX,
        size=[0.022, 0.1, 0.028],
        pos=[0, 0, 0.03],
        contype=ct,
        conaffinity=ca,
        mass=0.73,
        group=1,
    )
    if material:
        palm.material = material
    else:
        palm.rgba = [0.92, 0.92, 0.92, 1.0]
    hand.add_site(name=EE_SITE, pos=[0, 0, 0.1034], size=[0.006, 0, 0], group=3, rgba=[1, 0, 0, 1])
    for side, fname in zip((1, -1), FINGER_JOINTS):
        quat = [1, 0, 0, 0] if side > 0 else [0, 0, 0, 1]
        f = hand.add_body(name=fname, pos=[0, 0, 0.0584], quat=quat, gravcomp=gc)
        f.add_joint(
            name=fname,
            type=mujoco.mjtJoint.mjJNT_SLIDE,
            axis=[0, 1, 0],
            range=[0, FINGER_OPEN],
            limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            damping=[cfg.finger_damping, 0, 0],
            armature=cfg.finger_armature,
            solref_limit=[0.01, 1],
            solimp_limit=[0.99, 0.999, 0.001, 0.5, 2],
        )
        # Finger body (behind the pad) and the pad whose inner face sits at y = joint value;
        # both collide (hidden group 3) and render as one mesh.
        body_box = ([0.01, 0.008, 0.012], [0, 0.018, 0.012])
        pad_box = ([0.011, 0.005, 0.026], [0, 0.005, 0.028])
        f.add_geom(
            type=_BOX,
            size=body_box[0],
            pos=body_box[1],
            contype=ct,
            conaffinity=ca,
            mass=0.01,
            group=3,
            rgba=[0.2, 0.2, 0.2, 1],
        )
        f.add_geom(
            name=FINGER_GEOMS[0] if side > 0 else FINGER_GEOMS[1],
            type=_BOX,
            size=pad_box[0],
            pos=pad_box[1],
            contype=ct,
            conaffinity=ca,
            mass=0.015,
            group=3,
            condim=4,
            friction=[cfg.finger_friction, 0.01, 0.0001],
            rgba=[0.15, 0.15, 0.15, 1],
            solref=list(PAD_SOLREF),
            solimp=list(PAD_SOLIMP),
            solmix=1000.0,
            margin=PAD_MARGIN,
        )
        parts = [_box_vertices(*body_box), _box_vertices(*pad_box)]
        _add_visual(spec, f, f"{fname}_vis", parts, finger_material, rgba=(0.15, 0.15, 0.15, 1))
    # Fingers move together (Panda hand): tendon = mean opening, equality keeps them equal.
    tendon = spec.add_tendon(name="gripper_split")
    for fname in FINGER_JOINTS:
        tendon.wrap_joint(fname, 0.5)
    spec.add_equality(
        type=mujoco.mjtEq.mjEQ_JOINT,
        name1=FINGER_JOINTS[0],
        name2=FINGER_JOINTS[1],
        objtype=mujoco.mjtObj.mjOBJ_JOINT,
        solref=[0.005, 1],
        solimp=[0.95, 0.99, 0.001, 0.5, 2],
    )
    for i in range(7):
        _position_actuator(
            spec,
            ARM_ACTUATORS[i],
            ARM_JOINTS[i],
            mujoco.mjtTrn.mjTRN_JOINT,
            JOINT_KP[i],
            JOINT_KV[i],
            (JOINT_LOWER[i], JOINT_UPPER[i]),
            JOINT_FORCE_LIMIT[i],
        )
    _position_actuator(
        spec,
        GRIPPER_ACTUATOR,
        "gripper_split",
        mujoco.mjtTrn.mjTRN_TENDON,
        cfg.gripper_kp,
        0.0,
        (FINGER_CLOSED_TARGET, FINGER_OPEN),
        2.0 * cfg.grip_force,
    )


def _position_actuator(spec, name, target, trntype, kp, kv, ctrlrange, force_limit):
    a = spec.add_actuator(name=name, target=target, trntype=trntype)
    a.gaintype = mujoco.mjtGain.mjGAIN_FIXED
    a.biastype = mujoco.mjtBias.mjBIAS_AFFINE
    gain = np.zeros(10)
    gain[0] = kp
    bias = np.zeros(10)
    bias[1], bias[2] = -kp, -kv
    a.gainprm, a.biasprm = gain, bias
    a.ctrlrange = list(ctrlrange)
    a.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
    a.forcerange = [-force_limit, force_limit]
    a.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
    return a


def build_arm_spec(
    config: ArmConfig | None = None, timestep: float = DEFAULT_TIMESTEP, table: bool = True
) -> mujoco.MjSpec:
    """Standalone arm on a table top at z = 0 (for tests and quick experiments)."""
    spec = mujoco.MjSpec()
    configure_physics(spec, timestep)
    ct, ca = GROUP_WORLD
    if table:
        spec.worldbody.add_geom(
            name="table",
            type=_BOX,
            size=[0.8, 0.8, 0.02],
            pos=[0.4, 0, -0.02],
            contype=ct,
            conaffinity=ca,
            rgba=[0.6, 0.5, 0.4, 1],
        )
    spec.worldbody.add_light(pos=[0, 0, 2], dir=[0, 0, -1])
    add_arm(spec, config=config)
    return spec
