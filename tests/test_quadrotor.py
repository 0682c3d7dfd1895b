"""Physics sanity of the shared quadrotor model (robots/quadrotor.py) and its task base."""

import math

import mujoco
import numpy as np
import pytest

from simenvs.robots.quadrotor import (
    GRAVITY,
    PRESETS,
    Quadrotor,
    QuadrotorParams,
    add_quadrotor,
    get_preset,
    ground_effect_factor,
)

PRESET_NAMES = sorted(PRESETS)


def build(preset: str, mode: str = "ctbr", gravity: bool = True):
    spec = mujoco.MjSpec()
    spec.worldbody.add_geom(type=mujoco.mjtGeom.mjGEOM_PLANE, size=[20, 20, 5])
    add_quadrotor(spec, preset, action_mode=mode)
    if not gravity:
        spec.option.gravity = [0, 0, 0]
    model = spec.compile()
    data = mujoco.MjData(model)
    quad = Quadrotor(model, preset, mode)
    quad.bind_data(data)
    return model, data, quad


def zero_drag(model, quad):
    model.actuator_gainprm[quad.drag_ids, 0] = 0.0
    model.actuator_biasprm[quad.drag_ids, 2] = 0.0


@pytest.mark.parametrize("mode", ["ctbr", "motors"])
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_hover_holds_altitude_for_two_seconds(preset, mode):
    model, data, quad = build(preset, mode)
    quad.reset(data, [0.0, 0.0, 1.0])
    a = quad.hover_action()
    n = int(round(2.0 / model.opt.timestep))
    z = []
    for _ in range(n):
        quad.write_action(data, a)
        mujoco.mj_step(model, data)
        z.append(data.qpos[2])
    assert np.max(np.abs(np.array(z) - 1.0)) < 0.05
    assert np.linalg.norm(data.qpos[:2]) < 0.05


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_free_fall_accelerates_at_g(preset):
    model, data, quad = build(preset)
    zero_drag(model, quad)
    quad.reset(data, [0.0, 0.0, 5.0], thrust_fraction=0.0)
    quad.write_action(data, np.array([-1.0, 0.0, 0.0, 0.0]))  # zero thrust
    t = 0.5
    for _ in range(int(round(t / model.opt.timestep))):
        mujoco.mj_step(model, data)
    assert data.qvel[2] == pytest.approx(-GRAVITY * t, rel=1e-3)
    assert data.qpos[2] == pytest.approx(5.0 - 0.5 * GRAVITY * t**2, rel=5e-3)


@pytest.mark.parametrize("mode", ["ctbr", "motors"])
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_max_thrust_matches_thrust_to_weight(preset, mode):
    model, data, quad = build(preset, mode)
    zero_drag(model, quad)
    p = get_preset(preset)
    quad.reset(data, [0.0, 0.0, 1.0], thrust_fraction=1.0)
    quad.write_action(data, np.ones(4) if mode == "motors" else np.array([1.0, 0, 0, 0]))
    mujoco.mj_forward(model, data)
    assert quad.thrust(data) == pytest.approx(p.max_thrust, rel=1e-6)
    assert data.qacc[2] == pytest.approx((p.thrust_to_weight - 1.0) * GRAVITY, rel=1e-3)
    assert p.max_rpm == pytest.approx(math.sqrt(p.max_thrust / (4 * p.kf)))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_body_rate_step_tracked_with_expected_lag(preset, axis):
    """CTBR: a rate step passes the motor lag, then the P rate loop: two first-order lags."""
    model, data, quad = build(preset, gravity=False)
    p = get_preset(preset)
    quad.reset(data, [0.0, 0.0, 1.0])
    a = quad.hover_action()
    a[1 + axis] = 0.2
    quad.write_action(data, a)
    dt = model.opt.timestep
    n = int(round(0.3 / dt))
    w = []
    for _ in range(n):
        mujoco.mj_step(model, data)
        w.append(quad.body_rates(data)[axis])
    w = np.array(w)
    t = dt * np.arange(1, n + 1)
    t1, t2 = p.motor_tau, p.rate_tau
    ref = 0.2 * p.max_rate[axis]
    expected = ref * (1 - (t1 * np.exp(-t / t1) - t2 * np.exp(-t / t2)) / (t1 - t2))
    assert np.max(np.abs(w - expected)) < 0.03 * ref
    # the lag is real: well short of the command after one motor time constant
    assert w[int(t1 / dt)] < 0.6 * ref
    others = [k for k in range(3) if k != axis]
    assert np.max(np.abs(quad.body_rates(data)[others])) < 1e-6


def test_motor_mode_yaw_torque_from_km():
    model, data, quad = build("racer", "motors", gravity=False)
    p = get_preset("racer")
    zero_drag(model, quad)
    quad.reset(data, [0.0, 0.0, 1.0], thrust_fraction=0.0)
    rpm = 0.8 * p.max_rpm
    frac = (rpm / p.max_rpm) ** 2
    data.act[quad.act_adr] = [frac, 0.0, frac, 0.0]  # one diagonal pair spinning
    data.ctrl[quad.cmd_ids] = [frac, 0.0, frac, 0.0]
    mujoco.mj_forward(model, data)
    tau = 2 * p.km * rpm**2
    assert abs(data.qacc[5] * p.inertia[2]) == pytest.approx(tau, rel=1e-3)
    assert abs(data.qacc[3]) < 1e-6 and abs(data.qacc[4]) < 1e-6  # diagonal pair: no roll/pitch


def test_param_defs_change_the_physics():
    model, data, quad = build("racer")
    defs = {d.name: d for d in quad.param_defs()}
    p = get_preset("racer")

    def vertical_acc(**values):
        for k in defs:
            if defs[k].apply is not None:
                defs[k].apply(model, defs[k].nominal)
        for k, v in values.items():
            defs[f"dynamics.quad.{k}"].apply(model, v)
        zero_drag(model, quad)
        quad.reset(data, [0.0, 0.0, 1.0])
        quad.write_action(data, quad.hover_action())
        mujoco.mj_forward(model, data)
        return data.qacc[2]

    assert abs(vertical_acc()) < 1e-9
    assert vertical_acc(kf=1.1 * p.kf) == pytest.approx(0.1 * GRAVITY, rel=1e-3)
    assert vertical_acc(thrust_scale=0.9) == pytest.approx(-0.1 * GRAVITY, rel=1e-3)
    assert vertical_acc(mass=1.25 * p.mass) == pytest.approx((1 / 1.25 - 1) * GRAVITY, rel=1e-3)
    defs["dynamics.quad.inertia_scale"].apply(model, 1.2)
    assert model.body_inertia[quad.body_id] == pytest.approx(1.2 * np.array(p.inertia))
    defs["dynamics.quad.motor_tau"].apply(model, 0.05)
    assert np.all(model.actuator_dynprm[quad.cmd_ids, 0] == 0.05)
    defs["dynamics.quad.drag"].apply(model, [0.1, 0.2, 0.3])
    assert model.actuator_gainprm[quad.drag_ids, 0].tolist() == [0.1, 0.2, 0.3]
    # every documented constant is a parameter
    for leaf in ("mass", "inertia_scale", "kf", "km", "motor_tau", "thrust_scale", "drag", "wind"):
        assert f"dynamics.quad.{leaf}" in defs


def test_linear_drag_opposes_air_velocity():
    model, data, quad = build("racer", gravity=False)
    p = get_preset("racer")
    quad.reset(data, [0.0, 0.0, 1.0], vel=[2.0, 0.0, 0.0], thrust_fraction=0.0)
    quad.write_action(data, np.array([-1.0, 0, 0, 0]))
    mujoco.mj_forward(model, data)
    assert data.qacc[0] == pytest.approx(-p.drag[0] * 2.0 / p.mass, rel=1e-6)
    quad.set_wind(data, np.array([2.0, 0.0, 0.0]))  # moving with the wind: no drag
    mujoco.mj_forward(model, data)
    assert abs(data.qacc[0]) < 1e-9


def test_ground_effect_factor():
    assert ground_effect_factor(10.0, 0.06) == pytest.approx(1.0, abs=1e-4)
    assert 1.0 < ground_effect_factor(0.05, 0.06) <= 1.6
    assert ground_effect_factor(0.0, 0.06) == 1.6


def test_cameras_and_sites_exist():
    model, _, _ = build("crazyflie")
    for cam in ("fpv", "down", "chase"):
        assert model.camera(cam).id >= 0
    for i in range(4):
        assert model.site(f"quad_rotor{i}").id >= 0


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="unknown quadrotor preset 'foo'"):
        get_preset("foo")
    with pytest.raises(ValueError, match="unknown action_mode 'rpm'"):
        add_quadrotor(mujoco.MjSpec(), "racer", action_mode="rpm")
    with pytest.raises(ValueError, match="mass"):
        PRESETS["racer"].replace(mass=-1.0)
    with pytest.raises(ValueError, match="thrust_to_weight"):
        PRESETS["racer"].replace(thrust_to_weight=0.9)
    with pytest.raises(ValueError, match="rate_tau"):
        add_quadrotor(mujoco.MjSpec(), PRESETS["racer"].replace(rate_tau=0.001))
    model, _, _ = build("racer", "ctbr")
    with pytest.raises(ValueError, match="action_mode='motors'"):
        Quadrotor(model, "racer", "motors")
    assert isinstance(get_preset(PRESETS["racer"]), QuadrotorParams)


def test_task_env_hover_wind_and_ground_crash():
    """Through the task base: nominal hover holds, wind pushes downwind, ground is a crash."""
    from simenvs.envs.drone_race.env import DroneRaceEnv

    env = DroneRaceEnv(randomization="none", n_distractors=0)
    env.reset(seed=0)
    hover = env.hover_action()
    z0 = env.quad.pos(env.data)[2]
    for _ in range(96):  # 2 s
        *_, term, trunc, info = env.step(hover)
        assert not term
    assert abs(env.quad.pos(env.data)[2] - z0) < 0.05

    obs, _ = env.reset(seed=0, options={"params": {"dynamics.quad.wind": [2.0, 0.0, 0.0]}})
    x0 = obs[0]
    for _ in range(48):
        obs, *_ = env.step(hover)
    assert obs[0] - x0 > 0.1  # drifted along +x

    env.reset(seed=0)
    env.teleport([0.0, 0.0, 0.3], vel=[0.0, 0.0, -3.0])
    for _ in range(20):
        *_, term, trunc, info = env.step(env.hover_action() * 0 - 1)
        if term:
            break
    assert term and info["crashed"] and info["crash_reason"] == "ground"
    env.close()


def test_mass_and_inertia_params_reach_the_dynamics():
    """MuJoCo 4 caches dof_M0 at compile time; the params must update it (no mj_setConst)."""
    model, data, quad = build("racer", gravity=False)
    defs = {d.name: d for d in quad.param_defs()}
    zero_drag(model, quad)
    quad.reset(data, [0.0, 0.0, 1.0])
    quad.write_action(data, np.array([1.0, 0.2, 0.0, 0.0]))  # full thrust + roll command
    data.act[quad.act_adr] = [1.0, 0.2 * 12.0, 0.0, 0.0]
    mujoco.mj_forward(model, data)
    acc0 = data.qacc[:6].copy()
    defs["dynamics.quad.mass"].apply(model, 2.0 * get_preset("racer").mass)
    defs["dynamics.quad.inertia_scale"].apply(model, 2.0)
    mujoco.mj_forward(model, data)
    assert data.qacc[2] == pytest.approx(acc0[2] / 2.0, rel=1e-9)
    assert data.qacc[3] == pytest.approx(acc0[3] / 2.0, rel=1e-9)
    reference = mujoco.MjData(model)
    mujoco.mj_setConst(model, reference)  # what a full recompute of the constants gives
    mujoco.mj_forward(model, data)
    assert data.qacc[2] == pytest.approx(acc0[2] / 2.0, rel=1e-9)


def test_task_ground_effect_imu_noise_and_motor_mode():
    from simenvs.envs.drone_race.env import DroneRaceEnv

    def climb(**kw):
        env = DroneRaceEnv(randomization="none", n_distractors=0, **kw)
        env.reset(seed=0)
        env.teleport([0.0, 0.0, 0.06])
        for _ in range(10):
            obs, *_ = env.step(env.hover_action())
        env.close()
        return obs[2] - 0.06

    assert climb(ground_effect=True) > climb() + 0.005  # extra lift near the ground
    assert abs(climb(action_mode="motors")) < 0.01  # motor-mode hover holds too

    env = DroneRaceEnv(randomization="none", n_distractors=0)
    quiet, _ = env.reset(seed=0)
    noisy, _ = env.reset(seed=0, options={"params": {"sensor.imu.gyro_noise_std": 0.05}})
    assert np.allclose(quiet[:15], noisy[:15])
    assert 0.0 < np.abs(noisy[15:18] - quiet[15:18]).max() < 0.3
    env.close()


def test_attitude_is_current_not_one_substep_old():
    """After a step MuJoCo's ``xmat`` still holds the attitude from before the last substep's
    integration; the observation, the wind frame and ``rot`` use the current ``qpos``."""
    import mujoco

    from simenvs.envs.drone_race.env import DroneRaceEnv
    from simenvs.robots.quadrotor import quat_to_rot, quats_to_rots

    env = DroneRaceEnv(randomization="none", n_distractors=0)
    env.reset(seed=0, options={"params": {"dynamics.quad.wind": [1.5, -1.0, 0.3]}})
    q, d = env.quad, env.data
    a = env.hover_action() + np.array([0.0, 0.8, -0.5, 0.6])  # spin up: R changes fast
    for _ in range(6):
        obs, *_ = env.step(a)
    stale = d.xmat[q.body_id].copy()
    mujoco.mj_kinematics(env.model, d)
    now = d.xmat[q.body_id].copy()
    assert np.abs(stale - now).max() > 1e-3  # the lag is real at these rates
    assert np.allclose(obs[6:15], now, atol=1e-6)
    assert np.allclose(q.rot(d).ravel(), now, atol=1e-12)
    env.apply_action(a)  # the drag reference is the wind in the current body axes
    assert np.allclose(d.ctrl[q.drag_ids], np.array([1.5, -1.0, 0.3]) @ now.reshape(3, 3))
    quats = np.random.default_rng(0).normal(size=(50, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    rows = np.array([quat_to_rot(*x) for x in quats.tolist()])
    assert np.array_equal(quats_to_rots(quats), rows)  # bit-identical scalar and array forms
    for x, r in zip(quats, rows):
        m = np.empty(9)
        mujoco.mju_quat2Mat(m, x)
        assert np.allclose(m, r, atol=1e-15)
    env.close()
