"""PyBullet versions of the drone tasks: same model, same scenes, same verdicts as MuJoCo.

Tolerances: at equal parameters the PyBullet quad follows the MuJoCo quad to < 0.1 mm over
2 s of hover and a 2 s manoeuvre (measured ~1e-14 m: both engines integrate a free rigid body
with the same semi-implicit Euler step), so a failure here means the motor / rate-loop / drag
model, the parameters or the command path diverged. Contacts are each engine's own, so
touchdowns and crashes are compared by verdict and step (within a few control steps).
"""

from __future__ import annotations

import math

import gymnasium as gym
import mujoco
import numpy as np
import pytest

pytest.importorskip("pybullet")

from simenvs.agents.experts import make as make_expert  # noqa: E402
from simenvs.envs.drone_race.env import DroneRaceEnv  # noqa: E402
from simenvs.envs.rooftop_landing.env import RooftopLandingEnv  # noqa: E402
from simenvs.pybullet.drone_race import PyBulletDroneRaceEnv  # noqa: E402
from simenvs.pybullet.quadrotor import QuadConstants, QuadDynamics  # noqa: E402
from simenvs.pybullet.rooftop_landing import PyBulletRooftopLandingEnv  # noqa: E402
from simenvs.robots.quadrotor import Quadrotor, add_quadrotor, get_preset  # noqa: E402

POS_TOL = 1e-4  # m, open-loop agreement in free flight


def _step_both(envs, action):
    """Step the MuJoCo and the PyBullet env. After ``mj_step`` MuJoCo's ``xmat`` is one
    substep old (it is computed before the integration); the task reads it for the wind in body
    axes and the ground-effect direction of the next step, while the PyBullet env refreshes it.
    Refreshing it on the MuJoCo side too keeps the comparison about physics (reported to the
    quadrotor task owner: observations pair the new position with that stale attitude)."""
    out = [e.step(action) for e in envs]
    mujoco.mj_kinematics(envs[0].model, envs[0].data)
    return out


def _pair(task: str, **kw):
    if task == "race":
        return DroneRaceEnv(**kw), PyBulletDroneRaceEnv(**kw)
    return RooftopLandingEnv(**kw), PyBulletRooftopLandingEnv(**kw)


def _reset_both(envs, seed, options=None):
    return [e.reset(seed=seed, options=options) for e in envs]


def _hover(env) -> np.ndarray:
    """Hover action for this episode's true mass, thrust scale and kf (nominal map)."""
    q, prm = env.quad, env.params
    p = q.p
    gain = prm.get("dynamics.quad.thrust_scale", 1.0) * prm.get("dynamics.quad.kf", p.kf) / p.kf
    frac = prm.get("dynamics.quad.mass", p.mass) * 9.81 / (p.max_thrust * gain)
    if q.action_mode == "ctbr":
        return np.array([2.0 * frac - 1.0, 0.0, 0.0, 0.0])
    return np.full(4, 2.0 * math.sqrt(frac) - 1.0)


def _manoeuvre(hover: np.ndarray, k: int, mode: str) -> np.ndarray:
    """2 s hover, then 2 s of rolling, pitching, yawing and thrust changes."""
    a = hover.copy()
    t = k / 48.0
    if t <= 2.0:
        return a
    s = t - 2.0
    if mode == "ctbr":
        a[0] += 0.1 * math.sin(2.0 * s)
        a[1] = 0.15 * math.sin(2 * math.pi * s)
        a[2] = 0.1 * math.sin(3.0 * s)
        a[3] = 0.2
    else:
        a += 0.005 * np.array([1, -1, 1, -1]) * math.sin(2 * math.pi * s)
        a += 0.0075 * np.array([1, 1, -1, -1]) * math.sin(3.0 * s)
    return np.clip(a, -1.0, 1.0)


# ---------------------------------------------------------------------------- the quad model
@pytest.mark.parametrize("mode", ["ctbr", "motors"])
@pytest.mark.parametrize("integrator", ["euler", "implicitfast"])
def test_wrench_reproduces_one_mujoco_step(mode, integrator):
    """From random states, commands and parameters, one explicit step with the PyBullet-side
    wrench lands on MuJoCo's next velocities and motor states (saturated torques included)."""
    p = get_preset("racer")
    spec = mujoco.MjSpec()
    add_quadrotor(spec, p, action_mode=mode)
    if integrator == "implicitfast":
        spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    m = spec.compile()
    d = mujoco.MjData(m)
    q = Quadrotor(m, p, mode)
    defs = {x.name: x for x in q.param_defs()}
    rng = np.random.default_rng(1)
    dt = m.opt.timestep
    worst = 0.0
    for trial in range(40):
        vals = {}
        for name, pd in defs.items():
            if pd.apply is None:
                continue
            lo, hi = pd.bounds()
            vals[name] = rng.uniform(lo, hi) if pd.shape == () else rng.uniform(lo, hi, pd.shape)
            pd.apply(m, vals[name])
        mujoco.mj_setConst(m, mujoco.MjData(m))
        mujoco.mj_resetData(m, d)
        quat = rng.normal(size=4)
        d.qpos[3:7] = quat / np.linalg.norm(quat)
        d.qvel[:3] = 2.0 * rng.normal(size=3)
        d.qvel[3:6] = (8.0 if trial % 2 else 1.0) * rng.normal(size=3)  # odd: saturating
        act, ctrl = rng.uniform(0, 1, 4), rng.uniform(0, 1, 4)
        if mode == "ctbr":
            mr = np.asarray(p.max_rate)
            act[1:], ctrl[1:] = rng.uniform(-mr, mr), rng.uniform(-mr, mr)
        d.act[q.act_adr], d.ctrl[q.cmd_ids] = act, ctrl
        wind = rng.normal(size=3)
        d.ctrl[q.drag_ids] = wind
        mujoco.mj_forward(m, d)
        R, v, w = d.xmat[q.body_id].reshape(3, 3).copy(), d.qvel[:3].copy(), d.qvel[3:6].copy()
        const = QuadConstants.from_values(p, mode, vals)
        dyn = QuadDynamics(const, dt, implicit=integrator == "implicitfast")
        dyn.reset(act, ctrl)
        dyn.set_commands(wind_body=wind)
        f, t = dyn.wrench(R, v, w)
        assert np.allclose(dyn.force, d.actuator_force[q.cmd_ids], rtol=1e-12, atol=1e-12)
        mujoco.mj_step(m, d)
        # what a semi-implicit engine does with that wrench (gravity and gyroscopic term its own)
        v1 = v + dt * (f / const.mass + np.array([0.0, 0.0, -9.81]))
        gyro = -np.cross(w, const.inertia * w)
        w1 = w + dt * ((t @ R) + gyro) / const.inertia
        worst = max(worst, np.abs(v1 - d.qvel[:3]).max(), np.abs(w1 - d.qvel[3:6]).max())
        assert np.allclose(dyn.act, d.act[q.act_adr], atol=1e-12)
    assert worst < 1e-9, worst


@pytest.mark.parametrize("mode,steps", [("ctbr", 192), ("motors", 144)])
def test_drone_race_open_loop_trajectories_agree(mode, steps):
    """Same seed, same open-loop actions: 2 s hover + a manoeuvre (2 s of CTBR; 1 s of
    differential rotor commands, after which the open-loop quad tumbles) with randomized
    dynamics (mass, inertia, kf, km, motor lag, thrust, drag, wind) end at the same state."""
    envs = _pair("race", action_mode=mode, randomization="wide", n_distractors=0)
    (o0, i0), (o1, i1) = _reset_both(envs, seed=11)
    assert set(i0["params"]) == set(i1["params"])
    for k in i0["params"]:
        assert np.array_equal(np.asarray(i0["params"][k]), np.asarray(i1["params"][k])), k
    assert np.array_equal(o0, o1)
    hover = _hover(envs[0])
    start = o0[:3].copy()
    for k in range(steps):
        (o0, r0, t0, _, f0), (o1, r1, t1, _, f1) = _step_both(envs, _manoeuvre(hover, k, mode))
        assert not t0 and not t1, (k, f0, f1)
    d0, d1 = envs[0].data, envs[1].data
    assert np.linalg.norm(d0.qpos[:3] - start) > 0.3, "the manoeuvre did not move the quad"
    assert np.abs(d0.qpos[:3] - d1.qpos[:3]).max() < POS_TOL
    assert np.abs(d0.qvel - d1.qvel).max() < 1e3 * POS_TOL
    assert np.abs(o0[:3] - o1[:3]).max() < POS_TOL  # observed positions
    assert r0 == pytest.approx(r1, abs=1e-3)
    for e in envs:
        e.close()


def test_rooftop_open_loop_with_wind_gusts_and_ground_effect():
    envs = _pair("roof", randomization="default", clutter_density=0.3)
    (o0, _), (o1, _) = _reset_both(envs, seed=5)
    assert envs[0].params["dynamics.wind.gust_std"] > 0.0
    assert np.array_equal(o0, o1)
    hover = _hover(envs[0])
    for k in range(144):
        (o0, *_), (o1, *_) = _step_both(envs, _manoeuvre(hover, k + 48, "ctbr"))
    assert np.abs(envs[0].data.qpos[:3] - envs[1].data.qpos[:3]).max() < POS_TOL
    assert np.abs(o0[18:22] - o1[18:22]).max() < 10 * POS_TOL  # site-relative task state
    for e in envs:
        e.close()


# ---------------------------------------------------------------------------- same scenes
def test_same_city_block_geometry():
    """Every surface MuJoCo's downward rays hit (roof slabs, parapets, clutter, sloped
    height-field roofs, street) exists at the same height in PyBullet's mirror of the pool:
    a probe sphere (r = 5 mm) 2 cm above the hit is 15 mm from PyBullet's scene (less on
    slopes: 0.02 cos(slope) - 0.005, >= 9 mm up to 45 deg). Two consecutive blocks."""
    env = PyBulletRooftopLandingEnv(randomization="none", n_distractors=0, clutter_density=0.7)
    pb, c = env._pb, env.bullet_client
    for seed in (1, 2):
        env.reset(seed=seed)  # a new block rebuilds the PyBullet world: probe after it
        probe = pb.createMultiBody(
            0.0, pb.createCollisionShape(pb.GEOM_SPHERE, radius=0.005, physicsClientId=c), -1,
            [0, 0, -50], physicsClientId=c,
        )  # fmt: skip
        m, d = env.model, env.data
        uids = [
            pb.getBodyUniqueId(i, physicsClientId=c)
            for i in range(pb.getNumBodies(physicsClientId=c))
        ]
        scene = [u for u in uids if u not in (probe, env.bullet_quad.body)]
        x0, y0, x1, y1 = env.city.bounds
        gid = np.zeros(1, np.int32)
        group = np.zeros(6, np.uint8)  # the groups holding colliding world geoms
        world = np.flatnonzero((m.geom_bodyid == 0) & (m.geom_contype > 0))
        group[np.unique(m.geom_group[world])] = 1
        top = env.city.top + 5.0
        heights, gaps, flat = [], [], []
        for x in np.linspace(x0 + 0.3, x1 - 0.3, 20):
            for y in np.linspace(y0 + 0.3, y1 - 0.3, 20):
                dist = mujoco.mj_ray(m, d, np.array([x, y, top]), np.array([0.0, 0.0, -1.0]),
                                     group, 1, -1, gid)  # fmt: skip
                z = top - dist
                pb.resetBasePositionAndOrientation(probe, [x, y, z + 0.02], [0, 0, 0, 1],
                                                   physicsClientId=c)  # fmt: skip
                near = [p[8] for u in scene
                        for p in pb.getClosestPoints(probe, u, 0.1, physicsClientId=c)]  # fmt: skip
                gaps.append(min(near, default=1.0))
                heights.append(z)
                flat.append(m.geom_type[gid[0]] != mujoco.mjtGeom.mjGEOM_HFIELD)
        gaps, flat = np.asarray(gaps), np.asarray(flat)
        ok = (gaps > 0.009) & (gaps < 0.0155)
        assert ok.mean() > 0.98, (seed, ok.mean(), np.sort(gaps)[:5], np.sort(gaps)[-5:])
        # flat tops (slabs, parapets, clutter, street): exact; slopes: convex hull, 1 mm margin
        assert np.mean(np.abs(gaps[flat] - 0.015) < 5e-4) > 0.9  # (edges: neighbours closer)
        assert flat.mean() < 1.0, "no sloped roof sampled"
        assert np.ptp(heights) > 5.0  # roofs at different heights were sampled
    env.close()


def test_same_layout_and_image_scene_per_seed():
    envs = _pair("race", obs_mode="rgb", randomization="default", track="random")
    (o0, i0), (o1, i1) = _reset_both(envs, seed=3)
    assert envs[0].track.pos.tolist() == envs[1].track.pos.tolist()
    assert o1.shape == o0.shape == (64, 64, 3) and o1.dtype == np.uint8
    seg0 = envs[0].render_camera_image("overview", 96, 96, "segmentation")
    seg1 = envs[1].render_camera_image("overview", 96, 96, "segmentation")
    assert (seg0 == seg1).mean() > 0.9  # same geoms where both renderers look
    m = envs[0].model
    gates = [m.geom(f"gate{i}_{k}").id for i in range(envs[0].track.n) for k in ("square", "round")]
    assert np.isin(seg1, gates).sum() > 20
    dep0 = envs[0].render_camera_image("fpv", 64, 64, "depth")
    dep1 = envs[1].render_camera_image("fpv", 64, 64, "depth")
    near = (dep0 < 30.0) & (dep1 < 30.0)
    # same frustum; TinyRenderer samples pixels about half a pixel off MuJoCo's centres
    assert near.mean() > 0.3 and np.median((np.abs(dep0 - dep1) / dep0)[near]) < 0.05
    # appearance randomization reaches PyBullet pixels
    o2, _ = envs[1].reset(seed=4)
    assert np.abs(o2.astype(float) - o1.astype(float)).mean() > 5.0
    for e in envs:
        e.close()


# ---------------------------------------------------------------------------- same verdicts
def _fly(env, policy, steps):
    """Closed loop; on the MuJoCo side the attitude is refreshed before the policy reads it
    (see ``_step_both``), which needs noise-free observations (randomization "none")."""
    obs = env.unwrapped._get_obs()
    events = []
    info = {}
    for k in range(steps):
        obs, _, term, trunc, info = env.step(policy(obs, k))
        if not isinstance(env, (PyBulletDroneRaceEnv, PyBulletRooftopLandingEnv)):
            mujoco.mj_kinematics(env.model, env.data)
            obs = env._get_obs()
        events.append(info)
        if term or trunc:
            break
    return k, info, events


def test_gate_passes_classified_identically():
    envs = _pair("race", randomization="none", track="random")
    _reset_both(envs, seed=4)
    runs = []
    for e in envs:
        ex = make_expert(e)
        ex.reset()
        k, info, ev = _fly(e, lambda o, _k, ex=ex: ex.act(o), 500)
        steps = [i for i in range(1, len(ev)) if ev[i]["gates_passed"] > ev[i - 1]["gates_passed"]]
        runs.append((k, info["is_success"], info["gates_passed"], steps))
    assert runs[0][2] >= 3 and runs[0][1:] == runs[1][1:] and runs[0][0] == runs[1][0]
    for e in envs:
        e.close()


def test_drone_race_crashes_classified_identically():
    envs = _pair("race", randomization="none", n_distractors=0, gate_shape="square")
    # 1) motors off: a ground crash
    _reset_both(envs, seed=2)
    off = np.array([-1.0, 0.0, 0.0, 0.0])
    res = [_fly(e, lambda o, k: off, 200) for e in envs]
    assert [r[1]["crash_reason"] for r in res] == ["ground", "ground"]
    assert abs(res[0][0] - res[1][0]) <= 1
    # 2) flying straight into the frame of the first gate
    _reset_both(envs, seed=2)
    for e in envs:
        g, n = e.race_state()["gate_pos"][0], e.race_state()["gate_normals"][0]
        lateral = np.array([-n[1], n[0], 0.0])
        pos = g - 2.0 * n + (e.gate_geo.inner + 0.5 * e.gate_geo.frame) * lateral
        d, q = e.data, e.quad
        d.qpos[q.pos_slice] = pos
        d.qvel[q.vel_slice] = 4.0 * n
        e._prev_p = tuple(pos)
        mujoco.mj_forward(e.model, d)
        if isinstance(e, PyBulletDroneRaceEnv):
            e.sync_bullet_from_mujoco()
    hover = envs[0].quad.hover_action()
    res = [_fly(e, lambda o, k: hover, 100) for e in envs]
    assert [r[1]["crash_reason"] for r in res] == ["gate_frame", "gate_frame"]
    assert res[0][0] == res[1][0]
    for e in envs:
        e.close()


def test_touchdowns_classified_alike():
    """A soft landing (expert) is a success in both engines, a motors-off drop a hard
    touchdown, each at nearly the same step; contacts come from each engine."""
    envs = _pair("roof", randomization="none", n_distractors=0)
    _reset_both(envs, seed=1)
    res = []
    for e in envs:
        ex = make_expert(e)
        ex.reset()
        k, info, ev = _fly(e, lambda o, _k, ex=ex: ex.act(o), 1440)
        td = next(i for i, x in enumerate(ev) if x["touched_down"])
        res.append((k, td, info["is_success"], info["failure"], info["touchdown_speed"]))
    assert res[0][2] and res[1][2], res  # both settled on the site: success
    # touchdown at the same step (+-3); settling (1 s in contact below 0.25 m/s) is contact
    # dynamics, each engine's own: within 0.25 s
    assert abs(res[0][1] - res[1][1]) <= 3 and abs(res[0][0] - res[1][0]) <= 12, res
    assert max(res[0][4], res[1][4]) < 0.3
    _reset_both(envs, seed=1)
    off = np.array([-1.0, 0.0, 0.0, 0.0])
    res = [_fly(e, lambda o, k: off, 600) for e in envs]
    assert [r[1]["failure"] for r in res] == ["hard_touchdown"] * 2, res
    assert abs(res[0][0] - res[1][0]) <= 1
    for e in envs:
        e.close()


def test_obstacle_hit_classified_alike():
    envs = _pair("roof", randomization="none", n_distractors=0, clutter_density=0.0)
    _reset_both(envs, seed=3)
    city = envs[0].city
    bld = max((p for p in city.prims if p.role == "building"), key=lambda p: p.size[2])
    x, y, z = bld.pos
    start = np.array([x - bld.size[0] - 2.0, y, z])  # 2 m west of a facade, mid height
    for e in envs:
        d, q = e.data, e.quad
        d.qpos[q.pos_slice] = start
        d.qvel[q.vel_slice] = (3.0, 0.0, 0.0)
        mujoco.mj_forward(e.model, d)
        if isinstance(e, PyBulletRooftopLandingEnv):
            e.sync_bullet_from_mujoco()
    hover = envs[0].quad.hover_action()
    res = [_fly(e, lambda o, k: hover, 100) for e in envs]
    assert [r[1]["failure"] for r in res] == ["obstacle", "obstacle"], res
    assert abs(res[0][0] - res[1][0]) <= 1
    for e in envs:
        e.close()


# ---------------------------------------------------------------------------- env contract
class _NanSafeInfo(gym.Wrapper):
    """The MuJoCo tasks put NaN in step info before the event (``lap_time``,
    ``touchdown_speed``) and gymnasium's determinism check compares floats with ==; reported to
    their owners. Maps NaN to None so check_env tests everything else."""

    def step(self, action):
        o, r, te, tr, info = self.env.step(action)
        clean = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in info.items()}
        return o, r, te, tr, clean


@pytest.mark.parametrize(
    "cls,kw",
    [
        (PyBulletDroneRaceEnv, {"obs_mode": "state_rgb"}),
        (PyBulletRooftopLandingEnv, {"clutter_density": 0.3}),
    ],
)
def test_check_env(cls, kw):
    from gymnasium.utils.env_checker import check_env

    env = cls(render_mode="rgb_array", width=48, height=48, **kw)
    check_env(_NanSafeInfo(env))
    env.close()


def test_same_interface_params_and_errors():
    envs = _pair("race", randomization="default", n_distractors=0)
    assert envs[0].observation_space == envs[1].observation_space
    assert envs[0].action_space == envs[1].action_space
    assert envs[0].state_layout() == envs[1].state_layout()
    assert envs[0].action_layout() == envs[1].action_layout()
    fixed = {"dynamics.quad.mass": 0.9, "dynamics.quad.wind": [1.0, 0.0, 0.0]}
    (_, i0), (_, i1) = _reset_both(envs, seed=0, options={"params": fixed})
    assert i1["params"]["dynamics.quad.mass"] == 0.9 == i0["params"]["dynamics.quad.mass"]
    assert envs[1].bullet_quad.dyn.c.mass == 0.9
    with pytest.raises(TypeError, match="unknown argument"):
        PyBulletDroneRaceEnv(bogus=1)
    with pytest.raises(ValueError, match="solver_iterations"):
        PyBulletDroneRaceEnv(solver_iterations=0)
    with pytest.raises(ValueError, match="action"):
        envs[1].step([0.0, float("nan"), 0.0, 0.0])
    for e in envs:
        e.close()


def test_recorded_sim_state_replays_in_mujoco():
    """A PyBullet episode's MuJoCo-layout sim state (what SimOpt records from proxy:pybullet)
    restores the same observation in the MuJoCo env."""
    from simenvs.data.recorder import set_sim_state, sim_state_of

    envs = _pair("race", randomization="none", n_distractors=0)
    _reset_both(envs, seed=7)
    hover = envs[1].quad.hover_action()
    for k in range(60):
        o1, *_ = envs[1].step(_manoeuvre(hover, k + 96, "ctbr"))
    set_sim_state(envs[0], sim_state_of(envs[1]))
    o0 = envs[0]._get_obs()
    assert np.abs(o0[:18] - o1[:18]).max() < 1e-5
    for e in envs:
        e.close()


def test_pybullet_reality_hides_dynamics():
    from simenvs.pybullet.reality import HIDDEN_OFFSETS, make_pybullet_reality, pybullet_truth

    truth = pybullet_truth("racer")
    assert truth["dynamics.quad.mass"] == pytest.approx(0.8 * HIDDEN_OFFSETS["dynamics.quad.mass"])
    reality = make_pybullet_reality("simenvs/DroneRace-v0", env_kwargs={"n_distractors": 0})
    env = reality.env.unwrapped
    assert isinstance(env, PyBulletDroneRaceEnv)
    defs = {p.name: p for p in env.registry}
    prior = env.randomization.params
    for k, v in truth.items():  # inside the physical bounds, outside the training prior
        lo, hi = defs[k].bounds()
        assert np.all(np.asarray(v) >= lo) and np.all(np.asarray(v) <= hi), k
        if k in prior and hasattr(prior[k], "low"):
            a, b = np.asarray(prior[k].low), np.asarray(prior[k].high)
            assert np.all((np.asarray(v) < a) | (np.asarray(v) > b)), k

    class Hover:
        def act(self, obs):
            return env.hover_action()

    rollouts = reality.collect(lambda _env: Hover(), 1, seed=0)
    ep = rollouts.episodes[0]
    assert all(k.startswith("layout.") for k in ep.params)
    assert env.params["dynamics.quad.mass"] == truth["dynamics.quad.mass"]
    # the hidden quad is weaker than nominal: nominal hover sinks it to the ground
    assert len(ep.actions) < 200
    reality.close()
    with pytest.raises(ValueError, match="no PyBullet version"):
        make_pybullet_reality("simenvs/Grasp-v0")


def test_bench_measures_both_engines():
    from simenvs.pybullet.bench import compare_engines, measure_steps_per_second

    r = measure_steps_per_second("DroneRace", "pybullet", n_steps=40, warmup=5, n_distractors=0)
    assert r["steps_per_s"] > 0 and r["engine"] == "pybullet"
    c = compare_engines("simenvs/DroneRace-v0", n_steps=40, repeats=1, action="random")
    assert c["mujoco_steps_per_s"] > 0 and c["pybullet_steps_per_s"] > 0
    with pytest.raises(ValueError, match="no env for task"):
        measure_steps_per_second("Grasp", "pybullet")
