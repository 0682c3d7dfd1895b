"""SimEnv machinery through a minimal task (tests/toy_env.py)."""

import itertools

import numpy as np
import pytest

from simenvs.core.env import OBS_MODES
from simenvs.core.example import ToyPushEnv


@pytest.fixture
def env():
    e = ToyPushEnv(obs_mode="rgb", image_size=48)
    yield e
    e.close()


def test_same_seed_same_params_and_pixels(env):
    o1, i1 = env.reset(seed=7)
    o2, i2 = env.reset(seed=7)
    assert np.array_equal(o1, o2)
    for k, v in i1["params"].items():
        assert np.array_equal(np.asarray(v), np.asarray(i2["params"][k])), k
    a = np.array([0.5, -0.2])
    s1 = [env.step(a)[0] for _ in range(3)]
    env.reset(seed=7)
    s2 = [env.step(a)[0] for _ in range(3)]
    assert all(np.array_equal(x, y) for x, y in zip(s1, s2))


def test_sixteen_seeds_give_sixteen_different_scenes(env):
    imgs = [env.reset(seed=s)[0].astype(np.float32) for s in range(16)]
    diffs = [np.abs(a - b).mean() for a, b in itertools.combinations(imgs, 2)]
    assert min(diffs) > 0.5
    assert np.mean(diffs) > 15.0  # on a 0-255 scale: whole-scene changes, not noise


def test_no_randomization_is_constant():
    e = ToyPushEnv(obs_mode="rgb", image_size=32, randomization="none")
    fixed = {"params": {"layout.box_x": 0.0}}  # "none" keeps the layout random
    a = e.reset(seed=1, options=fixed)[0]
    b = e.reset(seed=2, options=fixed)[0]
    c = e.reset(seed=2)[0]
    e.close()
    assert np.array_equal(a, b)
    assert not np.array_equal(b, c)


def test_dynamics_values_in_bounds_and_in_the_model(env):
    box = env.model.body("box").id
    geom = env.model.geom("box").id
    nominal_mass = 1.0
    seen = []
    for s in range(10):
        _, info = env.reset(seed=s)
        p = info["params"]
        for d in env.registry:
            if not d.is_categorical:
                lo, hi = d.bounds()
                v = np.asarray(p[d.name], float)
                assert np.all(v >= lo) and np.all(v <= hi), d.name
        assert 0.5 <= p["dynamics.box_mass"] <= 2.0
        assert env.model.body_mass[box] == pytest.approx(nominal_mass * p["dynamics.box_mass"])
        assert env.model.geom_friction[geom, 0] == pytest.approx(p["dynamics.box_friction"])
        seen.append(p["dynamics.box_mass"])
    assert len(set(seen)) == 10


def test_masses_change_the_physics():
    e = ToyPushEnv(obs_mode="state")
    xs = []
    for m in (0.5, 2.0):
        e.reset(seed=0, options={"params": {"dynamics.box_mass": m, "layout.box_x": 0.0}})
        for _ in range(5):
            obs, *_ = e.step([1.0, 0.0])
        xs.append(obs[0])
    assert xs[0] > xs[1] + 0.05  # the light box went further


def test_mass_scales_the_inertia_the_solver_sees():
    """A free box pushed without friction: acceleration = F / m exactly."""
    e = ToyPushEnv(obs_mode="state", randomization="none")
    acc = []
    for m in (0.5, 2.0):
        e.reset(seed=0, options={"params": {"dynamics.box_mass": m, "dynamics.box_friction": 0.2}})
        e.data.qpos[2] = 0.5  # in the air: no contact, no friction
        obs, *_ = e.step([1.0, 0.0])
        acc.append(obs[3] / e.dt)
    assert acc[0] / acc[1] == pytest.approx(4.0, rel=0.02)


def test_overrides_fix_values_and_unknown_names_fail(env):
    _, info = env.reset(seed=0, options={"params": {"dynamics.box_mass": 1.7}})
    assert info["params"]["dynamics.box_mass"] == 1.7
    with pytest.raises(ValueError, match="unknown randomization parameter 'dynamics.box_mas'"):
        env.reset(options={"params": {"dynamics.box_mas": 1.0}})
    with pytest.raises(ValueError, match="outside its bounds"):
        env.reset(options={"params": {"dynamics.box_mass": 100.0}})
    with pytest.raises(ValueError, match="unknown reset option"):
        env.reset(options={"parms": {}})


def test_fixing_one_stream_leaves_others():
    e = ToyPushEnv(obs_mode="state")
    _, a = e.reset(seed=3)
    _, b = e.reset(seed=3, options={"seeds": {"layout": 99}})
    assert a["params"]["dynamics.box_mass"] == b["params"]["dynamics.box_mass"]
    assert a["params"]["appearance.tex.floor.seed"] == b["params"]["appearance.tex.floor.seed"]
    assert a["params"]["layout.box_x"] != b["params"]["layout.box_x"]


def test_set_randomization_between_episodes(env):
    env.set_randomization({"dynamics.box_mass": 3.0})
    assert env.reset(seed=0)[1]["params"]["dynamics.box_mass"] == 3.0
    with pytest.raises(ValueError, match="outside the allowed range"):
        env.set_randomization({"dynamics.box_mass": [0.01, 1.0]})
    assert env.reset(seed=0)[1]["params"]["dynamics.box_mass"] == 3.0  # old spec kept
    env.set_randomization("wide")
    assert env.randomization.params  # preset expanded
    with pytest.raises(ValueError, match="unknown randomization 'medium'"):
        env.set_randomization("medium")


def test_bad_constructor_arguments():
    with pytest.raises(
        TypeError, match=r"unknown argument\(s\) \['colour'\].*allowed: .*n_textures"
    ):
        ToyPushEnv(colour="red")
    with pytest.raises(ValueError, match="unknown obs_mode 'pixels'"):
        ToyPushEnv(obs_mode="pixels")
    with pytest.raises(ValueError, match="unknown render_mode"):
        ToyPushEnv(render_mode="human")


def test_bad_actions(env):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        env.step([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="non-finite values at indices \\[1\\]"):
        env.step([0.0, np.nan])
    with pytest.raises(ValueError, match="non-finite"):
        env.step([np.inf, 0.0])


def test_divergence_ends_episode_cleanly():
    e = ToyPushEnv(obs_mode="state")
    e.reset(seed=0)
    e.apply_action = lambda a: e.data.xfrc_applied.__setitem__(
        (e.model.body("box").id, slice(0, 3)), 1e300
    )
    obs, reward, terminated, truncated, info = e.step([0.0, 0.0])
    assert truncated and not terminated
    assert "physics_error" in info and "diverged" in info["physics_error"]
    assert np.all(np.isfinite(obs))


@pytest.mark.parametrize("mode", OBS_MODES)
def test_obs_modes_and_spaces(mode):
    e = ToyPushEnv(obs_mode=mode, image_size=(40, 48))
    obs, _ = e.reset(seed=0)
    assert e.observation_space.contains(obs), mode
    obs2, *_ = e.step([0.1, 0.1])
    assert e.observation_space.contains(obs2)
    e.close()
    e.close()  # idempotent


def test_state_is_a_copy_and_render_modes():
    e = ToyPushEnv(obs_mode="state", render_mode="depth_array", width=64, height=48)
    obs, _ = e.reset(seed=0)
    e.step([1.0, 0.0])
    assert obs[0] != e.state_obs()[0]  # the returned obs did not change under us
    depth = e.render()
    assert depth.shape == (48, 64) and depth.dtype == np.float32
    assert 0.5 < float(np.median(depth)) < 5.0  # metres to the floor from the camera
    e.close()


def test_action_latency_delays_actions():
    def push_distance(latency):
        e = ToyPushEnv(obs_mode="state", randomization="none")
        e.reset(seed=0, options={"params": {"dynamics.action_latency": latency}})
        obs, *_ = e.step([1.0, 0.0])
        return obs[3]

    assert push_distance(0) > 0.1
    assert abs(push_distance(2)) < 1e-6


def test_sensor_noise_on_state():
    e = ToyPushEnv(obs_mode="state", randomization="none")
    a = e.reset(seed=0, options={"params": {"sensor.state.noise_std": 0.1}})[0]
    b = e.reset(seed=0)[0]
    assert np.abs(a - b).max() > 0.01


def test_gymnasium_and_sb3_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    for mode in ("state", "state_rgb"):
        e = ToyPushEnv(obs_mode=mode, image_size=40)
        check_env(e, skip_render_check=True)
        sb3_check(e, warn=False)
        e.close()


def test_frustum_culling_is_exact():
    """Geoms outside a camera's frustum are left out of the scene, and images stay identical
    bit for bit: primitives (resized in place), meshes, cameras all around, odd aspects."""
    import mujoco

    from simenvs.core.rendering import SceneRenderer

    rng = np.random.default_rng(0)
    kinds = ["sphere", "capsule", "ellipsoid", "cylinder", "box"]
    geoms = "".join(
        f'<geom type="{kinds[i % 5]}" size="{rng.uniform(0.05, 0.3)} {rng.uniform(0.05, 0.3)} '
        f'{rng.uniform(0.05, 0.3)}" pos="{" ".join(map(str, rng.uniform(-3, 3, 3)))}" '
        f'rgba="{rng.uniform()} {rng.uniform()} {rng.uniform()} 1"/>'
        for i in range(40)
    )
    meshes = "".join(
        f'<geom type="mesh" mesh="m{i}" pos="{" ".join(map(str, rng.uniform(-3, 3, 3)))}"/>'
        for i in range(3)
    )
    verts = " ".join(
        f'<mesh name="m{i}" vertex="{" ".join(map(str, rng.uniform(-0.4, 0.4, 24)))}"/>'
        for i in range(3)
    )
    xml = f"""<mujoco><asset>{verts}</asset><worldbody>
      <light pos="0 0 6" dir="0 0 -1"/><geom type="plane" size="5 5 5" pos="0 0 -3.5"/>
      <body name="cam" mocap="true"><camera name="c" fovy="70"/></body>{geoms}{meshes}
    </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    r = SceneRenderer(model, 96, 96)
    culled = tested = 0
    real_test = r._outside_frustum

    def counted(*args):
        nonlocal tested
        tested += 1
        return real_test(*args)

    for k in range(24):
        data.mocap_pos[0] = rng.uniform(-2, 2, 3)
        data.mocap_quat[0] = rng.normal(size=4)
        data.mocap_quat[0] /= np.linalg.norm(data.mocap_quat[0])
        model.geom_size[1 + k % 40] *= 1.5  # bounds follow in-place size edits
        model.cam_fovy[0] = rng.uniform(30, 120)
        mujoco.mj_forward(model, data)
        w, h = (96, 40) if k % 2 else (50, 96)
        for mode in ("rgb", "depth"):
            r._camera_for("c")
            out = r._outside_frustum(data, r._cam_id, w, h)
            culled += 0 if out is None else len(out)
            r._cull_wait = 0  # the culling render runs the frustum test on this frame
            r._outside_frustum = counted
            a = r.render(data, "c", w, h, mode)
            r._outside_frustum = lambda *args: None
            b = r.render(data, "c", w, h, mode)
            del r._outside_frustum
            assert np.array_equal(a, b), (k, mode)
    assert culled > 24 * 2 * 10  # most geoms are outside a random view
    assert tested == 24 * 2  # every culled render was compared with an unculled one
    # no skybox texture: the skybox and haze passes are off, and turning them on changes nothing
    flags = mujoco.mjtRndFlag
    assert not r.scene.flags[flags.mjRND_SKYBOX] and not r.scene.flags[flags.mjRND_HAZE]
    a = r.render(data, "c", 64, 64)
    r.scene.flags[flags.mjRND_SKYBOX] = r.scene.flags[flags.mjRND_HAZE] = True
    assert np.array_equal(a, r.render(data, "c", 64, 64))
    r.close()


def test_gaussian_image_noise_statistics():
    """The table-driven additive noise has the requested std, zero mean, and clips at 0/255."""
    from simenvs.randomization.sensor import apply_image_noise

    rng = np.random.default_rng(0)
    img = np.full((128, 128, 3), 100, np.uint8)
    for std in (0.7, 3.0, 12.0):
        out = apply_image_noise(img, {"sensor.image.gaussian_std": std}, rng).astype(float)
        assert abs(out.mean() - 100.0) < 0.05 * std + 0.02
        assert abs(out.std() - std) < 0.03 * std + 0.05  # rounding adds ~1/12 variance
    dark = apply_image_noise(np.zeros((64, 64, 3), np.uint8), {"sensor.image.gaussian_std": 8.0},
                             rng)  # fmt: skip
    assert dark.min() == 0 and 0.4 < (dark == 0).mean() < 0.6
    a = apply_image_noise(img, {"sensor.image.gaussian_std": 3.0}, np.random.default_rng(5))
    b = apply_image_noise(img, {"sensor.image.gaussian_std": 3.0}, np.random.default_rng(5))
    assert np.array_equal(a, b) and not np.array_equal(a, img)
