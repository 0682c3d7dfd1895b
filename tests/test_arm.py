"""The Panda-like arm: kinematics, IK with joint limits, servo tracking, and grasp physics."""

import mujoco
import numpy as np
import pytest

from simenvs.robots import arm
from simenvs.robots.arm_ik import DiffIK, quat_yaw_down, yaw_down_quat


@pytest.fixture(scope="module")
def model():
    return arm.build_arm_spec().compile()


def test_home_pose_points_down_and_has_panda_reach(model):
    ik = DiffIK(model, arm.EE_SITE, arm.ARM_JOINTS)
    pos, mat = ik.fk(arm.HOME_QPOS)
    assert mat[:, 2] == pytest.approx([0, 0, -1], abs=1e-6)  # fingers point down
    assert 0.35 < pos[0] < 0.55 and abs(pos[1]) < 1e-6 and 0.3 < pos[2] < 0.5
    ik.fk(np.zeros(7))  # Panda zero pose: the wrist sits 0.333 + 0.316 + 0.384 m up
    assert ik.data.body("link6").xpos == pytest.approx([0, 0, 1.033], abs=1e-6)
    assert model.body_mass[1:].sum() == pytest.approx(18.5, abs=1.0)  # Panda arm + hand


def test_ik_reaches_poses_across_the_workspace(model):
    ik = DiffIK(model, arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS)
    rng = np.random.default_rng(0)
    for _ in range(10):
        target = rng.uniform([0.3, -0.3, 0.02], [0.7, 0.3, 0.4])
        yaw = rng.uniform(-1.5, 1.5)
        q, start = arm.HOME_QPOS.copy(), ik.fk(arm.HOME_QPOS)[0]
        for k in range(1, 41):  # a few cm per call, like the env's Cartesian actions
            q = ik.solve(q, start + (target - start) * min(1.0, k / 25), yaw_down_quat(yaw))
        pos, mat = ik.fk(q)
        assert np.linalg.norm(pos - target) < 2e-3
        assert abs(np.angle(np.exp(1j * (quat_yaw_down(mat) - yaw)))) < 0.01
        assert mat[2, 2] == pytest.approx(-1.0, abs=1e-3)


def test_ik_respects_joint_limits_on_unreachable_targets(model):
    ik = DiffIK(model, arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS)
    q = arm.HOME_QPOS.copy()
    for _ in range(60):  # far out of reach and a yaw beyond joint 7's range
        q = ik.solve(q, np.array([1.5, 0.8, -0.5]), yaw_down_quat(3.0))
        assert np.all(q >= arm.JOINT_LOWER) and np.all(q <= arm.JOINT_UPPER)
    pos, _ = ik.fk(q)
    assert pos[0] > 0.6  # it still moved toward the target as far as the limits allow


def test_servos_hold_the_arm_against_gravity(model):
    d = mujoco.MjData(model)
    d.qpos[:7] = d.ctrl[:7] = arm.HOME_QPOS
    d.qpos[7:9] = d.ctrl[7] = arm.FINGER_OPEN
    mujoco.mj_step(model, d, nstep=500)
    assert np.abs(d.qpos[:7] - arm.HOME_QPOS).max() < 2e-3
    assert np.abs(d.qvel).max() < 1e-3


def _grasp_and_lift(shape, finger_friction, object_friction, mass=0.5, grip_force=35.0):
    """Close on a 5 cm object, lift it 15 cm in 0.75 s, hold 1 s; return (slip, held)."""
    spec = arm.build_arm_spec(
        config=arm.ArmConfig(finger_friction=finger_friction, grip_force=grip_force)
    )
    body = spec.worldbody.add_body(name="obj", pos=[0.5, 0, 0.025])
    body.add_freejoint()
    t = mujoco.mjtGeom
    geom = {
        "box": (t.mjGEOM_BOX, [0.025, 0.03, 0.025]),
        "cylinder": (t.mjGEOM_CYLINDER, [0.025, 0.025, 0]),
        "sphere": (t.mjGEOM_SPHERE, [0.025, 0, 0]),
    }[shape]
    ct, ca = arm.GROUP_WORLD
    body.add_geom(
        type=geom[0],
        size=geom[1],
        mass=mass,
        condim=4,
        contype=ct,
        conaffinity=ca,
        friction=[object_friction, 0.005, 0.0001],
    )
    m = spec.compile()
    d = mujoco.MjData(m)
    ik = DiffIK(m, arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS)
    d.qpos[:7] = q = arm.HOME_QPOS.copy()
    d.qpos[7:9] = arm.FINGER_OPEN
    mujoco.mj_forward(m, d)
    tcp = d.site(arm.EE_SITE).xpos.copy()

    def go(goal, steps, grip):
        nonlocal q, tcp
        for _ in range(steps):
            tcp = tcp + np.clip(goal - tcp, -0.03, 0.03)
            q = ik.solve(q, tcp, yaw_down_quat(0.0))
            d.ctrl[:7], d.ctrl[7] = q, grip
            mujoco.mj_step(m, d, nstep=round(0.05 / m.opt.timestep))  # one 20 Hz control step

    go(np.array([0.5, 0, 0.15]), 12, arm.FINGER_OPEN)
    go(np.array([0.5, 0, 0.02]), 8, arm.FINGER_OPEN)
    go(np.array([0.5, 0, 0.02]), 8, arm.FINGER_CLOSED_TARGET)
    rel0 = d.body("obj").xpos[2] - d.site(arm.EE_SITE).xpos[2]
    go(np.array([0.5, 0, 0.17]), 35, arm.FINGER_CLOSED_TARGET)
    rel1 = d.body("obj").xpos[2] - d.site(arm.EE_SITE).xpos[2]
    return abs(rel1 - rel0), d.body("obj").xpos[2] > 0.12


@pytest.mark.parametrize("shape", ["box", "cylinder", "sphere"])
def test_half_kilo_object_does_not_slip_across_the_friction_range(shape):
    for finger, obj in ((0.5, 0.3), (0.7, 0.4), (1.0, 1.0), (1.3, 1.2)):
        slip, held = _grasp_and_lift(shape, finger, obj)
        assert held, (shape, finger, obj)
        assert slip < 0.005, (shape, finger, obj, slip)


def test_grip_is_force_limited_and_friction_limited():
    # A weak, slippery grip cannot hold 0.5 kg: the hold above is physics, not a weld.
    slip, held = _grasp_and_lift("box", 0.1, 0.1, grip_force=5.0)
    assert not held and slip > 0.05


def _dls_reference(ik, q, target_pos, target_quat):
    """One damped-least-squares step written out with np.linalg (no limits reached)."""
    q = np.clip(q, ik.lower, ik.upper)
    pos, mat = ik.fk(q)
    mujoco.mj_comPos(ik.model, ik.data)  # for the Jacobian
    cur = np.empty(4)
    mujoco.mju_mat2Quat(cur, mat.ravel())
    neg, qerr, rot = np.empty(4), np.empty(4), np.empty(3)
    mujoco.mju_negQuat(neg, cur)
    mujoco.mju_mulQuat(qerr, target_quat, neg)
    mujoco.mju_quat2Vel(rot, qerr, 1.0)
    err = np.r_[target_pos - pos, rot] * ik.w_task
    jp, jr = np.zeros((3, ik.model.nv)), np.zeros((3, ik.model.nv))
    mujoco.mj_jacSite(ik.model, ik.data, jp, jr, ik.site_id)
    jac = np.vstack([jp, jr])[:, ik.dadr] * ik.w_task[:, None]
    v = ik.posture_gain * (ik.posture - q)
    a = jac @ jac.T + ik.damping2 * np.eye(6)
    dq = v + jac.T @ np.linalg.solve(a, err - jac @ v)
    return q + dq * min(1.0, ik.max_joint_step / np.abs(dq).max())


@pytest.mark.parametrize("rot_weight", [0.5, 0.3])  # 0.5 is folded into mju_quat2Vel's dt
def test_ik_step_matches_the_damped_least_squares_formula(model, rot_weight):
    ik = DiffIK(model, arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS, rot_weight=rot_weight)
    rng = np.random.default_rng(3)
    for k in range(50):
        q = arm.HOME_QPOS + rng.normal(0, 0.3, 7)
        pos, mat = ik.fk(q)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, mat.ravel())
        if k % 2:  # a small step (odd k) or a large, capped one
            target = pos + rng.normal(0, 0.01, 3)
        else:
            target, quat = pos + rng.normal(0, 0.3, 3), yaw_down_quat(rng.uniform(-1.5, 1.5))
        want = _dls_reference(ik, q, target, quat)
        if np.any(want < ik.lower) or np.any(want > ik.upper):
            continue  # the clamping loop's case: covered by the limits test
        assert ik.solve(q, target, quat) == pytest.approx(want, abs=1e-10)
    ik.posture_gain, ik.damping2 = 0.2, 0.01  # read on every solve, not cached at init
    q = arm.HOME_QPOS + 0.3
    target = ik.fk(q)[0]
    assert ik.solve(q, target, yaw_down_quat(0.2)) == pytest.approx(
        _dls_reference(ik, q, target, yaw_down_quat(0.2)), abs=1e-10
    )
