"""RooftopLanding-v0: env contract, touchdown classification, labels, expert, determinism."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from simenvs.agents.experts import make as make_expert
from simenvs.envs.rooftop_landing.city import Prim, _box, flat_city
from simenvs.envs.rooftop_landing.env import RooftopLandingEnv
from simenvs.envs.rooftop_landing.safe_map import Site, generate_landable_city

# a hand-built block: a flat 12 x 12 m roof (z = 12) with an AC unit and a water tank, and a
# steep (25 deg) shed roof next to it; the street all around
AC = _box(3.0, 0.0, 12.0, 0.8, 0.6, 0.7, "clutter", "ac_unit", roof=0)
TANK = Prim("cylinder", (-3.0, -3.5, 13.0), (1.0, 1.0, 0.0), "clutter", "water_tank", 0)
CITY = flat_city([(-6, -6, 6, 6, 12.0), (8, -6, 14, 6, 9.0)], [AC, TANK],
                 kinds=["flat", "shed"], slopes=[0.0, 25.0])  # fmt: skip


def _fixed_env(**kw):
    kw.setdefault("randomization", "none")
    return RooftopLandingEnv(city=CITY, **kw)


def _run_expert(env, expert, max_steps=None):
    obs, info = None, {}
    for _ in range(max_steps or env.max_episode_steps):
        obs, _, te, tr, info = env.step(expert.act(obs))
        if te or tr:
            break
    return info


# ---------------------------------------------------------------------------------------------
# contract


def test_check_env_state_and_perception_modes():
    check_env(RooftopLandingEnv(render_mode="rgb_array", width=64, height=64))
    check_env(RooftopLandingEnv(obs_mode="state_rgb"), skip_render_check=True)


def test_observation_modes_and_reset_info():
    env = RooftopLandingEnv(obs_mode="state", randomization="none", map_info=True)
    obs, info = env.reset(seed=3)
    assert obs.shape == (36,) and env.observation_space.contains(obs)
    assert sum(n for _, n, _ in env.state_layout()) == 36
    s = env.site
    assert np.allclose(obs[18:21], [s.x - obs[0], s.y - obs[1], s.z - obs[2]], atol=1e-4)
    assert obs[21] == pytest.approx(s.radius)
    # altitude: height above the surface straight below; grid: above the highest surface nearby
    assert obs[22] == pytest.approx(obs[2] - env.safe_map.height_at(obs[0], obs[1]), abs=1e-4)
    grid = obs[23:32].reshape(3, 3)
    assert grid.min() <= obs[22] + 1e-4 and grid[1, 1] <= obs[22] + 1e-4
    assert np.allclose(obs[32:36], env.hover_action())  # last action after reset
    assert info["safe_map"].shape == info["height_map"].shape == info["clearance_map"].shape
    assert info["safe_map"].any() and np.all(np.diff(info["sites"][:, 3]) <= 0)
    assert np.allclose(info["best_site"][:3], [s.x, s.y, s.z])
    # the ground truth is the generator's for the sampled seed and density
    prm = info["params"]
    city, smap = generate_landable_city(
        prm["layout.city.seed"], env.city_params, clutter_density=prm["layout.city.clutter_density"]
    )
    assert city.prims == env.city.prims and np.array_equal(smap.safe, info["safe_map"])
    for mode, key in (("state_rgb", 3), ("state_depth", 1)):
        e = RooftopLandingEnv(obs_mode=mode)
        o, _ = e.reset(seed=3)
        assert o["state"].shape == (18 + 64 + 4,) and o["image"].shape == (64, 64, key)
        assert e.observation_space.contains(o)
        assert "site_rel_pos" not in [n for n, _, _ in e.state_layout()]  # no target
    o, _ = RooftopLandingEnv(obs_mode="rgb").reset(seed=3)
    assert o.shape == (64, 64, 3) and o.std() > 5


def test_bad_arguments_are_rejected_with_clear_errors():
    with pytest.raises(ValueError, match="clutter_density.*1.5"):
        RooftopLandingEnv(clutter_density=1.5)
    with pytest.raises(ValueError, match="range_grid"):
        RooftopLandingEnv(range_grid=0)
    with pytest.raises(ValueError, match="reward weight 'speed'"):
        RooftopLandingEnv(reward_weights={"speed": 1.0})
    with pytest.raises(TypeError, match="unknown argument"):
        RooftopLandingEnv(density=0.2)


def test_determinism_and_layout_variety():
    def rollout(seed):
        env = RooftopLandingEnv()
        obs, info = env.reset(seed=seed)
        info = {**info, **env.ground_truth()}
        rng = np.random.default_rng(0)
        out = [obs]
        for _ in range(30):
            out.append(env.step(rng.uniform(-0.3, 0.3, 4) + env.hover_action())[0])
        return np.array(out), info

    a, ia = rollout(11)
    b, ib = rollout(11)
    c, ic = rollout(12)
    assert np.array_equal(a, b) and np.array_equal(ia["height_map"], ib["height_map"])
    assert not np.array_equal(a, c)
    assert ia["height_map"].shape != ic["height_map"].shape or not np.array_equal(
        ia["height_map"], ic["height_map"]
    )


def test_easy_variant_has_empty_roofs_and_the_oracle_target():
    env = RooftopLandingEnv(clutter_density=0.0)
    for seed in range(3):
        env.reset(seed=seed)
        assert not [p for p in env.city.prims if p.role == "clutter"]
        assert env.params["layout.city.clutter_density"] == 0.0


# ---------------------------------------------------------------------------------------------
# touchdown classification on a hand-built block


def test_soft_touchdown_on_the_safe_site_succeeds():
    env = _fixed_env()
    env.reset(seed=0)
    ex = make_expert(env)
    ex.reset()
    assert env.safe_map.is_safe(env.site.x, env.site.y)
    info = _run_expert(env, ex)
    assert info["is_success"] and info["failure"] == "" and not info["crashed"]
    assert info["touchdown_speed"] <= 0.5 and info["touchdown_tilt_deg"] <= 15.0


def test_hard_touchdown_is_a_crash():
    env = _fixed_env()
    env.reset(seed=0)
    s = env.site
    env.reset_quad([s.x, s.y, s.z + 3.0])
    mujoco.mj_forward(env.model, env.data)
    for _ in range(200):
        _, r, te, _, info = env.step(np.array([-1.0, 0.0, 0.0, 0.0]))
        if te:
            break
    assert te and info["failure"] == "hard_touchdown" and info["crashed"]
    assert info["touchdown_speed"] > 3.0 and not info["is_success"] and r < -5.0


@pytest.mark.parametrize(
    "where, z",
    [
        ("on_clutter", AC.pos[2] + AC.size[2]),  # soft, on top of the AC unit
        ("next_to_clutter", 12.0),  # on the roof, 0.12 m from the AC unit's side
        ("steep_roof", None),  # on the 25 deg shed roof
        ("street", 0.0),
    ],
)
def test_soft_touchdown_off_the_safe_map_is_unsafe(where, z):
    env = _fixed_env()
    env.reset(seed=0)
    x, y = {"on_clutter": (3.0, 0.0), "next_to_clutter": (3.0 - 0.8 - 0.3, 0.0),
            "steep_roof": (11.0, 0.0), "street": (-10.0, 0.0)}[where]  # fmt: skip
    if z is None:
        z = float(env.safe_map.surface_at(x, y))
    assert not env.safe_map.is_safe(x, y)
    env.site = Site(x, y, z, 1.0, 4.0, -1, 0.0)  # steer the expert there
    env.reset_quad([x, y, z + 1.2])  # start right above it: the expert only descends
    mujoco.mj_forward(env.model, env.data)
    ex = make_expert(env)
    ex.reset()
    info = _run_expert(env, ex)
    assert info["failure"] == "unsafe_site", info
    assert not info["crashed"] and info["touchdown_speed"] <= 0.5 and not info["is_success"]


def test_hitting_clutter_from_the_side_is_an_obstacle_crash():
    env = _fixed_env()
    env.reset(seed=0)
    env.reset_quad([0.5, 0.0, 12.6], vel=(2.5, 0.0, 0.0))  # below the AC top, flying at it
    mujoco.mj_forward(env.model, env.data)
    for _ in range(100):
        _, _, te, _, info = env.step(env.hover_action())
        if te:
            break
    assert te and info["failure"] == "obstacle" and info["crashed"]


def test_leaving_the_block_is_out_of_bounds():
    env = _fixed_env()
    env.reset(seed=0)
    env.reset_quad([0.0, 0.0, 20.0], vel=(15.0, 0.0, 0.0))
    for _ in range(200):
        _, _, te, _, info = env.step(env.hover_action())
        if te:
            break
    assert te and info["failure"] == "out_of_bounds"


def test_reward_is_shaped_toward_the_site():
    env = _fixed_env()
    env.reset(seed=0)
    s = env.site
    rewards = []
    for sign in (1.0, -1.0):  # toward the site, then away from it
        env.reset(seed=0)
        start = np.array([s.x - 4.0, s.y, s.z + 6.0])
        env.reset_quad(start, vel=(sign * 3.0, 0.0, 0.0))
        env._phi = env._potential(start)
        rewards.append(sum(env.step(env.hover_action())[1] for _ in range(10)))
    assert rewards[0] > 0.5 > -0.5 > rewards[1]


# ---------------------------------------------------------------------------------------------
# perception: range grid and per-pixel labels


def test_range_grid_and_safe_mask_match_the_geometry():
    env = _fixed_env(obs_mode="state_depth", labels=True, range_grid=3)
    env.reset(seed=0)
    s = env.site
    for (x, y), safe in (((s.x, s.y), 1), ((3.0, 0.0), 0)):
        env.reset_quad([x, y, 18.0])
        mujoco.mj_forward(env.model, env.data)
        rg = env.range_grid().reshape(3, 3)
        below = 18.0 - env.safe_map.height_at(x, y)
        assert rg[1, 1] == pytest.approx(below, abs=0.02)
        assert np.all(rg <= env.range_max)
        obs, _, _, _, info = env.step(env.hover_action())
        mask = info["safe_mask"]
        assert mask.shape == (64, 64) and mask.dtype == np.uint8
        assert mask[30:34, 30:34].min() == safe and mask[30:34, 30:34].max() == safe
        depth = obs["image"][..., 0].astype(float) / 255 * env.depth_max
        assert depth[32, 32] == pytest.approx(below, abs=0.3)
    # the drawn sloped roof matches its collision surface
    env.reset_quad([11.0, 0.0, 18.0])
    mujoco.mj_forward(env.model, env.data)
    depth = env.render_camera_image("down", 64, 64, "depth")
    assert depth[32, 32] == pytest.approx(18.0 - env.safe_map.surface_at(11.0, 0.0), abs=0.1)
    assert env.range_grid().reshape(3, 3)[1, 1] == pytest.approx(depth[32, 32], abs=0.1)
    # over the roof edge the mask marks roof pixels safe and street pixels unsafe
    env.reset_quad([-6.0, 3.0, 22.0])
    mujoco.mj_forward(env.model, env.data)
    m = env.safe_mask()
    assert 0.1 < m.mean() < 0.6


def test_altitude_and_clearance_grid_read_the_height_map():
    env = _fixed_env()
    env.reset(seed=0)
    smap = env.safe_map
    ys, xs = np.meshgrid(np.arange(-12.0, 12.0, 0.05), np.arange(-12.0, 12.0, 0.05), indexing="ij")
    heights = smap.height_at(xs, ys)

    def window_max(cx, cy, half):
        sel = (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
        return heights[sel].max()

    for x, y in ((0.0, 0.0), (3.0, 0.0), (5.5, 2.0), (-4.0, -3.0)):
        env.reset_quad([x, y, 20.0])
        assert env.altitude() == pytest.approx(20.0 - smap.height_at(x, y), abs=1e-4)
        grid = env.clearance_grid().reshape(3, 3)
        for i, dy in enumerate((-3.0, 0.0, 3.0)):
            for j, dx in enumerate((-3.0, 0.0, 3.0)):
                # each cell: clearance over the highest surface within 1.5-2 m of its centre
                hi = 20.0 - window_max(x + dx, y + dy, 1.45)
                lo = 20.0 - window_max(x + dx, y + dy, 2.05)
                assert lo - 1e-4 <= grid[i, j] <= hi + 1e-4, (x, y, i, j, grid)
    env.reset_quad([3.0 - 3.0, 0.0, 20.0])  # the AC unit (top 12.7 m) is in the +x cell
    grid = env.clearance_grid().reshape(3, 3)
    assert grid[1, 2] == pytest.approx(20.0 - (AC.pos[2] + AC.size[2]), abs=1e-3)
    assert grid[1, 0] == pytest.approx(8.0, abs=1e-3)  # bare roof at 12 m


def test_randomization_changes_pixels_dynamics_and_wind():
    env = RooftopLandingEnv(obs_mode="rgb", clutter_density=0.5)
    a, ia = env.reset(seed=1, options={"params": {"layout.city.seed": 3}})
    b, ib = env.reset(seed=2, options={"params": {"layout.city.seed": 3}})
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10  # same city, new look
    assert ia["params"]["dynamics.quad.mass"] != ib["params"]["dynamics.quad.mass"]
    mass = env.model.body_mass[env.quad.body_id]
    assert mass == pytest.approx(ib["params"]["dynamics.quad.mass"])
    none = RooftopLandingEnv(obs_mode="rgb", randomization="none", clutter_density=0.5)
    fix = {
        "layout.city.seed": 3,
        "layout.start.pos": [0.2, 0.1],
        "layout.start.yaw": 0.3,
        "layout.start.height": 6.0,
    }
    c, _ = none.reset(seed=1, options={"params": fix})
    d, _ = none.reset(seed=2, options={"params": fix})
    assert np.array_equal(c, d)

    def drift(gust):
        e = _fixed_env()
        e.reset(seed=4, options={"params": {"dynamics.wind.gust_std": gust}})
        p0 = e.data.qpos[:2].copy()
        for _ in range(96):
            e.step(e.hover_action())
        return e.data.qpos[:2] - p0

    assert np.linalg.norm(drift(0.0)) < 0.05 < 0.3 < np.linalg.norm(drift(3.0) - drift(0.0))


# ---------------------------------------------------------------------------------------------
# the scripted expert


def test_expert_lands_on_most_generated_blocks():
    env = RooftopLandingEnv()  # default randomization
    ex = make_expert(env)
    wins, failures = 0, []
    for seed in range(20):
        env.reset(seed=seed)
        ex.reset()
        info = _run_expert(env, ex)
        wins += bool(info["is_success"])
        if not info["is_success"]:
            failures.append((seed, info["failure"]))
    assert wins >= 16, failures
    assert info["touchdown_speed"] >= 0.0


# ---------------------------------------------------------------------------------------------
# speed work that must not change behaviour


def _hover_wobble(env, t):
    a = env.hover_action() + np.array(
        [0.2 * np.sin(t / 7), 0.1 * np.cos(t / 5), -0.05, 0.1 * np.sin(t / 3)]
    )
    return np.clip(a, -1.0, 1.0)


def test_seeded_rollout_is_pinned():
    """Obs and reward of a short default-randomization rollout, recorded before the speed work
    (no distractors in state mode, cached lookups): a change here changes behaviour, not just
    speed."""
    env = RooftopLandingEnv()
    obs, _ = env.reset(seed=3)
    total, obs_sum = 0.0, float(np.sum(obs, dtype=np.float64))
    for t in range(60):
        obs, r, _, _, _ = env.step(_hover_wobble(env, t))
        total += r
        obs_sum += float(np.sum(obs, dtype=np.float64))
    assert total == pytest.approx(-0.4919705342194288, rel=1e-6, abs=1e-6)
    assert obs_sum == pytest.approx(8612.992805491609, rel=1e-7)
    np.testing.assert_allclose(
        obs[:6], [2.36011, -7.52492, 34.33653, -3.05249, 2.41147, -0.39518], atol=2e-5
    )


def _trace(env, seed, policy, steps):
    """Every observation, reward, flag and info value of one episode."""
    out = []
    obs, _ = env.reset(seed=seed)
    out.append(obs.tobytes())
    ex = make_expert(env) if policy == "expert" else None
    if ex is not None:
        ex.reset()
    for t in range(steps):
        if ex is not None:
            a = ex.act(obs)
        elif policy == "dive":  # fall onto the block, then flail: hard touchdowns, obstacles
            a = np.array([-0.7 if t < 30 else 0.5, 0.3 * np.sin(t / 4), 0.2, 0.1])
        else:
            a = _hover_wobble(env, t)
        obs, r, te, tr, info = env.step(a)
        out.append((obs.tobytes(), r, te, tr, sorted(info.items())))
        if te or tr:
            break
    return out


def test_state_mode_has_no_distractors_and_the_same_observations():
    """Distractors only matter to cameras: state mode leaves them out (cheaper physics) and
    its observations and rewards equal those of an env that has them."""
    lean, full = RooftopLandingEnv(), RooftopLandingEnv(n_distractors=6)
    assert lean.n_distractors == 0 and RooftopLandingEnv(obs_mode="rgb").n_distractors == 6
    assert full.model.nmocap == 6 and lean.model.nmocap == 0
    for seed, policy, steps in ((4, "wobble", 60), (6, "dive", 400), (5, "expert", 1440)):
        lean_trace = _trace(lean, seed, policy, steps)
        assert lean_trace == _trace(full, seed, policy, steps), (seed, policy)
    assert dict(lean_trace[-1][4])["is_success"]  # a landing (contacts) was compared too


def test_camera_leaves_out_only_quad_parts_it_cannot_see():
    # the quad's own parts behind the downward camera's near plane are not drawn (a speedup):
    # frames must equal the full scene's, also with the camera moved and turned (wide preset)
    n_left_out = 0
    for preset in ("default", "wide"):
        fast = RooftopLandingEnv(obs_mode="rgb", randomization=preset)
        full = RooftopLandingEnv(obs_mode="rgb", randomization=preset)
        full._never_seen = lambda camera: None  # draws everything
        for seed in range(3):
            a, _ = fast.reset(seed=seed)
            b, _ = full.reset(seed=seed)
            assert np.array_equal(a, b)
            rng = np.random.default_rng(seed)
            for _ in range(15):
                act = np.clip(fast.hover_action() + rng.normal(0, 0.4, 4), -1, 1)
                a = fast.step(act.astype(np.float32))[0]
                b = full.step(act.astype(np.float32))[0]
                assert np.array_equal(a, b)
            hidden = fast._never_seen("down")
            n_left_out += 0 if hidden is None else len(hidden)
            quad = fast.quad.body_id
            if hidden is not None:  # only parts of the quad, never the city or distractors
                assert np.all(fast.model.body_rootid[fast.model.geom_bodyid[hidden]] == quad)
    assert n_left_out > 0  # the comparison covered frames with parts left out
    assert fast._never_seen("follow") is None  # other cameras draw everything


def test_numba_kernels_match_the_python_hooks_bit_for_bit():
    # kernels.py replaces state_obs / apply_action / evaluate in flight; the Python path
    # (what a subclass overriding a hook gets) must give identical values, noise included
    envs = [RooftopLandingEnv(obs_mode="state", randomization="wide") for _ in range(2)]
    py = envs[1]
    py._fast_obs = py._fast_act = py._fast_eval = False
    rng = np.random.default_rng(3)
    for seed in (0, 1):
        outs = [e.reset(seed=seed)[0] for e in envs]
        assert outs[0].tobytes() == outs[1].tobytes()
        hov = envs[0].hover_action()
        for t in range(300):
            a = np.clip(hov + 0.2 * rng.standard_normal(4), -1, 1).astype(np.float32)
            if t > 60:
                a[0] = -0.6  # come down: contacts and touchdowns take the Python path
            res = [e.step(a) for e in envs]
            assert res[0][0].tobytes() == res[1][0].tobytes(), t
            assert res[0][1:4] == res[1][1:4], t
            assert res[0][4] == res[1][4], t
            assert np.array_equal(envs[0].data.ctrl, py.data.ctrl)
            assert np.array_equal(envs[0].data.xfrc_applied, py.data.xfrc_applied)
            if res[0][2] or res[0][3]:
                break
