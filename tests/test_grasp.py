"""simenvs/Grasp-v0: API checks, expert success on held-out objects, determinism,
randomization that changes pixels and physics, labels that match the render."""

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from simenvs.agents.experts import make as make_expert
from simenvs.envs.grasp import objects as gobj
from simenvs.envs.grasp.env import WORKSPACE, GraspEnv

OBS_MODES = ("state", "rgb", "depth", "rgbd", "state_rgb", "state_rgb_wrist")


def run_expert(env, seed, params=None):
    obs, info = env.reset(seed=seed, options={"params": params} if params else None)
    expert = make_expert(env)
    for _ in range(env.max_episode_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act(obs))
        if terminated or truncated:
            break
    return info


@pytest.mark.parametrize("obs_mode", OBS_MODES)
def test_gymnasium_and_sb3_checkers(obs_mode):
    env = GraspEnv(obs_mode=obs_mode, image_size=48)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*infinity.*")
        check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()


def test_joint_action_mode_moves_the_joints():
    env = GraspEnv(action_mode="joint", randomization="none")
    sb3_check_env(env, warn=False)
    assert env.action_space.shape == (8,) and len(env.action_layout()) == 8
    obs0, _ = env.reset(seed=0)
    cmd0 = env.q_cmd.copy()
    a = np.zeros(8, np.float32)
    a[0], a[3] = 1.0, -1.0
    for _ in range(6):
        obs, *_ = env.step(a)
    names = [name for name, _, _ in env.state_layout()]
    start = sum(n for _, n, _ in env.state_layout()[: names.index("joint_pos")])
    dq = obs[start : start + 7] - obs0[start : start + 7]
    assert env.q_cmd - cmd0 == pytest.approx([0.3, 0, 0, -0.3, 0, 0, 0], abs=1e-9)
    # the servo follows the ramp with its PD lag (kv/kp x 1 rad/s = 0.1 rad)
    assert 0.18 < dq[0] < 0.3 and -0.3 < dq[3] < -0.18
    assert np.abs(dq[[1, 2, 4, 5, 6]]).max() < 0.02
    env.close()


def test_expert_succeeds_on_held_out_objects():
    env = GraspEnv(object_set="test")  # default randomization
    results = [run_expert(env, seed) for seed in range(20)]
    env.close()
    rate = np.mean([r["is_success"] for r in results])
    assert rate >= 0.8, rate
    assert all(r.get("max_lift", 0) < 1.0 for r in results)  # nothing was flung


def test_object_library_split_and_shapes():
    train, test = gobj.object_seeds("train"), gobj.object_seeds("test")
    assert len(train) == 900 and len(test) == 100 and not set(train) & set(test)
    objs = [gobj.make_object(s) for s in list(train[:60]) + list(test[:20])]
    assert {len(o.parts) for o in objs} == {1, 2, 3, 4}
    kinds = {p.kind for o in objs for p in o.parts}
    assert {"hull", "box", "cylinder", "capsule"} <= kinds
    for o in objs:  # graspable from above: narrow enough, not too tall, resting at z=0
        assert gobj.MIN_WIDTH <= o.narrow_width <= gobj.MAX_GRASP_WIDTH
        assert o.height <= gobj.MAX_HEIGHT
        assert o.support(np.array([[0, 0, -1.0]]))[0] == pytest.approx(0.0, abs=1e-9)
        assert 0.05 <= o.mass <= 0.4
    a, b = gobj.make_object.__wrapped__(7), gobj.make_object.__wrapped__(7)
    assert all(np.array_equal(p.pos, q.pos) for p, q in zip(a.parts, b.parts))
    with pytest.raises(ValueError, match="object_set.*'validation'.*allowed"):
        GraspEnv(object_set="validation")
    with pytest.raises(ValueError, match="num_objects.*6"):
        GraspEnv(num_objects=6)


def test_reset_draws_new_objects_without_interpenetration():
    env = GraspEnv(num_objects=5, object_set="test")
    seen = set()
    for seed in range(4):
        env.reset(seed=seed)
        seen.add(env._built_ids)
        assert all(s in gobj.object_seeds("test") for s in env._built_ids)
        d = env.data
        obj_geoms = set(np.concatenate(env._obj_geoms).tolist())
        for c in d.contact[: d.ncon]:  # objects touch the table, never each other deeply
            if c.geom1 in obj_geoms and c.geom2 in obj_geoms:
                assert c.dist > -0.003
        assert np.all(env.data.xipos[env._obj_body, 2] > 0)  # all on the table
    assert len(seen) == 4
    env.close()


def test_determinism_same_seed_same_everything():
    env = GraspEnv(obs_mode="state_rgb", image_size=32)
    runs = []
    for _ in range(2):
        obs, info = env.reset(seed=11)
        rng = np.random.default_rng(3)
        traj = [obs["state"], obs["image"]]
        for _ in range(8):
            obs, r, *_ = env.step(rng.uniform(-1, 1, 5).astype(np.float32))
            traj += [obs["state"], obs["image"]]
        runs.append((info["params"], env._built_ids, traj))
    (p1, ids1, t1), (p2, ids2, t2) = runs
    assert ids1 == ids2
    assert all(np.array_equal(np.asarray(p1[k]), np.asarray(p2[k])) for k in p1)
    assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
    other = GraspEnv(obs_mode="state_rgb", image_size=32)  # a fresh env agrees too
    obs, _ = other.reset(seed=11)
    assert np.array_equal(obs["image"], t1[1]) and np.array_equal(obs["state"], t1[0])
    env.close()
    other.close()


def test_appearance_randomization_changes_pixels_not_layout():
    env = GraspEnv(obs_mode="rgb", image_size=64, n_distractors=0)
    fixed = {"params": {f"layout.object{i}": i for i in range(3)}}
    imgs, states = [], []
    for s in range(4):
        env.reset(seed=0, options=fixed | {"seeds": {"appearance": s}})
        imgs.append(env.camera_obs("rgb").astype(np.float32))
        states.append(env.state_obs())
    env.close()
    assert all(np.array_equal(states[0], s) for s in states[1:])  # same physics state
    diffs = [np.abs(imgs[0] - im).mean() for im in imgs[1:]]
    assert min(diffs) > 10.0, diffs  # textures, lights, camera: whole-image changes


def test_dynamics_randomization_is_in_the_model_and_changes_the_physics():
    env = GraspEnv(num_objects=1, object_set="test")
    fixed = {"layout.object0": 3}
    strong = run_expert(
        env, 5, fixed | {"dynamics.grip_force": 1.2, "dynamics.finger_friction": 1.3}
    )
    m = env.model
    pads = env._pads
    assert m.geom_friction[pads, 0] == pytest.approx([1.3, 1.3])
    weak = run_expert(
        env,
        5,
        fixed
        | {
            "dynamics.grip_force": 0.3,
            "dynamics.finger_friction": 0.1,
            "dynamics.object_friction": [0.1],
            "dynamics.object_mass": [3.0],
        },
    )
    assert strong["is_success"] and not weak["is_success"]
    nominal = env.model.body_mass[env._obj_body[0]] / 3.0
    assert nominal == pytest.approx(gobj.make_object(env._built_ids[0]).mass, rel=1e-6)
    # Servo gains and damping: the same open-loop actions reach different joint states.
    finals = []
    for gain, damping in ((0.8, 0.5), (1.25, 2.0)):
        env.reset(
            seed=1,
            options={
                "params": fixed
                | {
                    "dynamics.actuator_gain": gain,
                    "dynamics.joint_damping": damping,
                    "dynamics.action_latency": 0,
                }
            },
        )
        for _ in range(3):
            obs, *_ = env.step(np.array([1, 0, -1, 0.5, -1], np.float32))
        finals.append(obs[9:16])
    assert np.abs(finals[0] - finals[1]).max() > 1e-3
    env.close()


def test_action_latency_delays_the_arm():
    env = GraspEnv(randomization="none")
    tcps = []
    for lat in (0, 2):
        obs, _ = env.reset(seed=2, options={"params": {"dynamics.action_latency": lat}})
        z0 = obs[2]
        obs, *_ = env.step(np.array([0, 0, -1, 0, -1], np.float32))
        tcps.append(z0 - obs[2])
    env.close()
    assert tcps[0] > 0.01 and abs(tcps[1]) < 0.002


def test_labels_match_the_render():
    env = GraspEnv(obs_mode="rgb", labels=True, image_size=96, randomization="wide")
    checked = 0
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        for _ in range(2):
            obs, _, _, _, info = env.step(env.action_space.sample())
        seg, boxes, poses = info["segmentation"], info["object_bboxes"], info["object_poses"]
        assert seg.shape == obs.shape[:2] and boxes.shape == (3, 4) and poses.shape == (3, 7)
        assert poses[:, :3] == pytest.approx(env.data.xpos[env._obj_body], abs=1e-6)
        assert set(np.unique(seg)) <= {0, 1, 2, 3}
        for i in range(3):
            ys, xs = np.nonzero(seg == i + 1)
            if len(xs) == 0:
                continue
            x0, y0, x1, y1 = boxes[i]
            inside = (xs + 0.5 >= x0 - 1) & (xs + 0.5 <= x1 + 1)
            inside &= (ys + 0.5 >= y0 - 1) & (ys + 0.5 <= y1 + 1)
            assert inside.all(), (seed, i)
            checked += 1
    env.close()
    assert checked >= 8


def test_success_needs_the_lift_held_for_half_a_second():
    env = GraspEnv(object_set="test", reward_type="dense")
    obs, _ = env.reset(seed=4)
    expert = make_expert(env)
    lifts, rewards = [], []
    for _ in range(env.max_episode_steps):
        obs, r, term, trunc, info = env.step(expert.act(obs))
        lifts.append(info["max_lift"])
        rewards.append(r)
        if term or trunc:
            break
    env.close()
    assert info["is_success"] and term and not trunc
    up = np.array(lifts) >= 0.1
    assert up[-10:].all() and not up[-11]  # exactly 10 steps (0.5 s) above 0.1 m
    assert rewards[-1] > 5.0 and max(rewards[:-1]) <= 1.0 and rewards[-2] > rewards[0]


def test_bad_arguments_are_named():
    for kwargs, match in (
        ({"action_mode": "torque"}, "action_mode 'torque'.*cartesian"),
        ({"reward_type": "shaped"}, "reward_type 'shaped'.*sparse"),
        ({"n_distractors": -1}, "n_distractors"),
    ):
        with pytest.raises(ValueError, match=match):
            GraspEnv(**kwargs)
    env = GraspEnv()
    with pytest.raises(ValueError, match="layout.object0"):
        env.reset(seed=0, options={"params": {"layout.object0": 5000}})
    env.close()


def test_physics_settings_and_collision_filter():
    """The cheap-physics choices (robots/arm.py) are what the env runs: 16 substeps of
    3.125 ms per 20 Hz control step, implicitfast, and the base/shoulder/upper-arm links out
    of collision while the forearm, hand and fingers still touch objects."""
    import mujoco

    from simenvs.robots import arm

    env = GraspEnv(randomization="none")
    m = env.model
    assert m.opt.timestep == arm.DEFAULT_TIMESTEP and env.frame_skip == 16
    assert env.dt == pytest.approx(0.05)
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST

    def collides(body):
        g = np.flatnonzero(m.geom_bodyid == m.body(body).id)
        return bool(((m.geom_contype[g] | m.geom_conaffinity[g]) > 0).any())

    assert not any(collides(b) for b in arm.NONCOLLIDING_LINKS)
    assert all(collides(b) for b in ("link5", "link6", "link7", "hand", "finger_left"))
    # every collision geom of the arm is hidden from the cameras (group 3) or is the hand
    arm_bodies = [m.body(b).id for b in arm.ARM_BODIES]
    for g in np.flatnonzero(np.isin(m.geom_bodyid, arm_bodies)):
        if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_CAPSULE:
            assert m.geom_group[g] == 3
    env.close()


def test_fast_paths_equal_the_reference_paths_bit_for_bit():
    """The per-step shortcuts (IK on the arm-only model, the one-gather state) change no bit:
    each is checked against the direct computation on the simulated scene over a rollout."""
    from simenvs.robots import arm
    from simenvs.robots.arm_ik import DiffIK, yaw_down_quat

    env = GraspEnv(num_objects=4, reward_type="dense")
    env.reset(seed=3, options={"params": {"dynamics.action_latency": 0}})
    assert env._gather is not None  # MjData's layout allows the one-gather path here
    scene_ik = DiffIK(env.model, arm.EE_SITE, arm.ARM_JOINTS, posture=arm.HOME_QPOS)
    assert env.ik.model.ngeom == 0  # the kinematic twin
    rng = np.random.default_rng(0)
    for t in range(40):
        a = rng.uniform(-1, 1, 5)
        a[2] = -abs(a[2]) if t < 25 else 1.0  # down into the objects, then up to the limits
        q0 = env.q_cmd.copy()
        target = np.clip(env.target_pos + a[:3] * 0.03, *WORKSPACE)
        yaw = float(np.clip(env.target_yaw + a[3] * 0.1, -1.75, 1.75))
        want = scene_ik.solve(q0, target, yaw_down_quat(yaw))
        env.step(a)
        assert env.q_cmd.tobytes() == want.tobytes()
        assert env.state_obs().tobytes() == env._state_obs_arrays().tobytes()
    env.close()


def test_rebuilt_registry_equals_one_built_from_scratch():
    """A reset that recompiles reuses the generic parameter definitions (same appearance
    elements) and the task's templates, each given the new model's ``apply``: the registry
    must equal one built from scratch for that model, name for name and write for write."""
    import copy

    env = GraspEnv()
    env.reset(seed=0)
    first = {p.name: p for p in env.registry}
    ids = env._built_ids
    env.reset(seed=1)
    assert env._built_ids != ids  # new objects: recompiled
    reused = [p for p in env.registry if first[p.name] is p]
    assert len(reused) > 60 and all(not p.name.startswith("dynamics.object") for p in reused)
    cached = env.registry
    del env._generic_defs, env._param_templates
    env._compile(env.build_spec(env.streams.layout))  # the same scene, registry from scratch
    assert env._built_ids != ids
    fresh = env.registry
    assert [p.name for p in cached] == [p.name for p in fresh]
    params = env.params
    models = []
    for reg in (cached, fresh):
        assert all(a.signature() == b.signature() for a, b in zip(reg, fresh))
        m = copy.deepcopy(env.model)
        for p in reg:
            assert np.array_equal(p.nominal, {q.name: q for q in fresh}[p.name].nominal)
            if p.apply is not None:
                p.apply(m, params[p.name])
        models.append(m)
    for field in ("body_mass", "geom_friction", "dof_damping", "geom_size", "light_pos",
                  "cam_quat", "mat_rgba", "actuator_gainprm", "actuator_forcerange"):  # fmt: skip
        assert np.array_equal(getattr(models[0], field), getattr(models[1], field)), field
    # the params were applied at reset: a model from the registry's nominals differs
    nominal = copy.deepcopy(env.model)
    for p in fresh:
        if p.apply is not None:
            p.apply(nominal, p.nominal if p.is_categorical else p.coerce(p.nominal))
    assert not np.array_equal(nominal.body_mass, models[0].body_mass)
    env.close()
