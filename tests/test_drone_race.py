"""DroneRace-v0: gate logic, tracks, env contract, randomization and the scripted expert."""

import math

import numpy as np
import pytest

from simenvs.agents.experts import make as make_expert
from simenvs.envs.drone_race.env import DroneRaceEnv
from simenvs.envs.drone_race.gates import HIT, NONE, PASS, WRONG_WAY, GateGeometry, classify
from simenvs.envs.drone_race.textures import N_TEXTURES, TEST_IDS, TRAIN_IDS
from simenvs.envs.drone_race.tracks import TRACKS, make_track, random_track

GEO = GateGeometry(opening=1.5, frame=0.2, depth=0.1)
R = 0.2


# ---------------------------------------------------------------- pure gate geometry
@pytest.mark.parametrize("round_", [False, True])
def test_classify_pass_miss_wrong_way_and_frame(round_):
    through = ((-0.3, 0.1, -0.1), (0.3, 0.1, -0.1))
    assert classify(*through, round_, GEO, R) == PASS
    assert classify(through[1], through[0], round_, GEO, R) == WRONG_WAY
    # crossing the plane beside the gate, clear of the frame: a miss
    assert classify((-0.3, 2.0, 0.0), (0.3, 2.0, 0.0), round_, GEO, R) == NONE
    # crossing through the frame bar
    assert classify((-0.3, 0.0, 0.85), (0.3, 0.0, 0.85), round_, GEO, R) == HIT
    # centre inside the opening but the airframe touches the inner edge
    assert classify((-0.3, 0.0, 0.7), (0.3, 0.0, 0.7), round_, GEO, R) == HIT
    # not crossing, but sitting in the frame's slab beside the bar (side hit)
    assert classify((-0.5, 0.0, 0.8), (-0.02, 0.0, 0.8), round_, GEO, R) == HIT
    # far in front of the gate: nothing
    assert classify((-3.0, 0.0, 0.0), (-2.5, 0.0, 0.0), round_, GEO, R) == NONE


def test_square_and_round_openings_differ_in_the_corners():
    corner = 0.45  # |y| = |z| = 0.45: inside the square's clear area, outside the circle's
    seg = ((-0.3, corner, corner), (0.3, corner, corner))
    assert classify(*seg, False, GEO, R) == PASS
    assert classify(*seg, True, GEO, R) == HIT


def test_bad_gate_geometry():
    with pytest.raises(ValueError, match="opening"):
        GateGeometry(opening=-1.0)


# ---------------------------------------------------------------- tracks
@pytest.mark.parametrize("name", TRACKS)
def test_tracks_are_valid(name):
    t = make_track(name, seed=3)
    assert t.n >= 6
    assert t.min_spacing() > 3.0
    assert np.all(np.abs(t.pos[:, :2]) < 16.0) and np.all(t.pos[:, 2] > 1.0)
    start, yaw = t.start(3.0)
    assert np.linalg.norm(start - t.pos[0]) == pytest.approx(3.0)


def test_random_tracks_are_deterministic_and_differ_by_seed():
    a, b, c = random_track(5), random_track(5), random_track(6)
    assert np.array_equal(a.pos, b.pos)
    assert not np.allclose(a.pos, c.pos)


# ---------------------------------------------------------------- env contract
@pytest.fixture(scope="module")
def env():
    e = DroneRaceEnv(randomization="none", n_distractors=0)
    yield e
    e.close()


def test_state_layout_and_spaces(env):
    obs, info = env.reset(seed=0)
    layout = env.state_layout()
    assert sum(n for _, n, _ in layout) == obs.shape[0] == 34
    assert [name for name, _, _ in layout[:4]] == ["pos", "vel", "rot", "body_rates"]
    assert np.allclose(obs[:3], env.quad.pos(env.data))
    assert np.allclose(obs[6:15], env.quad.rot(env.data).ravel())
    assert np.allclose(obs[18:21], env.race_state()["gate_pos"][0] - obs[:3], atol=1e-5)
    assert np.allclose(obs[30:34], env.hover_action())
    assert [x[0] for x in env.action_layout()][0] == "collective_thrust"
    assert env.frame_skip == 5 and env.control_hz == 48.0
    assert "params" in info and not info["is_success"]


def _fly(env, start, vel, steps=30):
    env.teleport(start, vel, yaw=math.atan2(vel[1], vel[0]) if vel[0] >= 0 else 0.0)
    infos, rewards = [], []
    for _ in range(steps):
        *_, r, term, _, info = env.step(env.hover_action())
        infos.append(info)
        rewards.append(r)
        if term:
            break
    return infos, rewards


def _gate0(env):
    rs = env.race_state()
    return rs["gate_pos"][0], rs["gate_normals"][0]


def test_env_gate_pass(env):
    env.reset(seed=0, options={"params": {"layout.gate.shape": "square"}})
    c, n = _gate0(env)
    infos, rewards = _fly(env, c - 1.0 * n, 4.0 * n)
    assert infos[-1]["gates_passed"] == 1 and not infos[-1]["crashed"]
    assert infos[-1]["target_gate"] == 1
    assert max(rewards) > env.weights["gate"]


def test_env_wrong_direction_is_no_pass(env):
    env.reset(seed=0, options={"params": {"layout.gate.shape": "square"}})
    c, n = _gate0(env)
    infos, _ = _fly(env, c + 1.0 * n, -4.0 * n)
    assert infos[-1]["gates_passed"] == 0 and not infos[-1]["crashed"]


def test_env_miss_beside_the_gate(env):
    env.reset(seed=0, options={"params": {"layout.gate.shape": "square"}})
    c, n = _gate0(env)
    side = np.array([-n[1], n[0], 0.0])
    infos, _ = _fly(env, c - 1.0 * n + 2.5 * side, 4.0 * n)
    assert infos[-1]["gates_passed"] == 0 and not infos[-1]["crashed"]


def test_env_frame_hit_is_a_crash(env):
    env.reset(seed=0, options={"params": {"layout.gate.shape": "square"}})
    c, n = _gate0(env)
    top_bar = c + np.array([0.0, 0.0, GEO.inner + GEO.frame / 2])
    infos, rewards = _fly(env, top_bar - 1.0 * n, 4.0 * n)
    assert infos[-1]["crashed"] and infos[-1]["crash_reason"] == "gate_frame"
    assert rewards[-1] < -env.weights["crash"] + 1.0


def test_leaving_the_arena_is_a_crash(env):
    env.reset(seed=0)
    env.teleport([env.half_extent - 0.05, 0.0, 2.0], [5.0, 0.0, 0.0])
    *_, term, _, info = env.step(env.hover_action())
    assert term and info["crash_reason"] == "out_of_arena"


def test_gymnasium_and_sb3_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    for mode in ("state", "state_rgb"):
        e = DroneRaceEnv(obs_mode=mode, n_distractors=1)
        check_env(e, skip_render_check=True)
        sb3_check(e, warn=False)
        e.close()


def test_image_observations():
    e = DroneRaceEnv(obs_mode="rgb", randomization="none", n_distractors=0)
    obs, _ = e.reset(seed=0)
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8 and obs.std() > 5
    e.close()
    e = DroneRaceEnv(obs_mode="depth", randomization="none", n_distractors=0)
    obs, _ = e.reset(seed=0)
    assert obs.shape == (64, 64, 1) and obs.min() < obs.max()
    e.close()


def test_determinism():
    e = DroneRaceEnv(track="random")
    runs = []
    for _ in range(2):
        obs, info = e.reset(seed=7)
        e.action_space.seed(3)
        traj = [obs]
        for _ in range(10):
            obs, r, *_ = e.step(e.action_space.sample())
            traj += [obs, np.float64(r)]
        runs.append((info["params"], traj, e.race_state()["gate_pos"]))
    (p1, t1, g1), (p2, t2, g2) = runs
    assert all(np.array_equal(np.asarray(p1[k]), np.asarray(p2[k])) for k in p1)
    assert all(np.array_equal(a, b) for a, b in zip(t1, t2))
    assert np.array_equal(g1, g2)
    e.reset(seed=8)
    assert not np.allclose(e.race_state()["gate_pos"], g1)  # a new random layout
    e.close()


# ---------------------------------------------------------------- randomization
def test_dynamics_and_layout_randomization_change_the_episode():
    e = DroneRaceEnv(n_distractors=0)
    masses, kfs, gates = set(), set(), []
    for s in range(4):
        e.reset(seed=s)
        masses.add(round(float(e.model.body_mass[e.quad.body_id]), 9))
        kfs.add(round(float(e.model.actuator_gear[e.quad.cmd_ids[0], 2]), 9))
        gates.append(e.race_state()["gate_pos"])
    assert len(masses) == 4 and len(kfs) == 4
    assert not np.allclose(gates[0], gates[1])  # position jitter
    e.close()


def test_gate_texture_split_and_pixels():
    e = DroneRaceEnv(obs_mode="rgb", gate_textures="test", n_distractors=0)
    seen = set()
    for s in range(12):
        e.reset(seed=s)
        seen.add(e.params["appearance.gate.texture"])
    assert seen <= set(TEST_IDS) and len(seen) > 1
    assert set(TRAIN_IDS).isdisjoint(TEST_IDS) and len(TRAIN_IDS) + len(TEST_IDS) == N_TEXTURES
    e.close()
    e = DroneRaceEnv(obs_mode="rgb", randomization="none", n_distractors=0)
    imgs = []
    for tex in (TRAIN_IDS[0], TRAIN_IDS[1]):
        obs, _ = e.reset(seed=0, options={"params": {"appearance.gate.texture": tex}})
        imgs.append(obs.astype(int))
    assert np.abs(imgs[0] - imgs[1]).sum() > 0  # the gate in view changed its look
    with pytest.raises(ValueError, match="appearance.gate.texture"):
        e.reset(seed=0, options={"params": {"appearance.gate.texture": TEST_IDS[0]}})
    e.close()


def test_gate_shape_switch_and_moving_gates():
    e = DroneRaceEnv(moving_gates=True, gate_speed=1.0, randomization="none", n_distractors=0)
    e.reset(seed=0, options={"params": {"layout.gate.shape": "round"}})
    g = e.model.geom("gate0_round").id
    assert e.model.geom_group[g] == 0 and e.model.geom_group[e.model.geom("gate0_square").id] == 5
    g0 = e.race_state()["gate_pos"].copy()
    for _ in range(24):
        e.step(e.hover_action())
    moved = np.linalg.norm(e.race_state()["gate_pos"] - g0, axis=1)
    assert moved.min() > 0.05 and moved.max() < 1.5  # smooth motion within the amplitude
    assert np.allclose(e.data.mocap_pos[e._gate_mocap[0]], e.race_state()["gate_pos"][0])
    e.close()
    e = DroneRaceEnv(randomization="none", n_distractors=0)  # static gates stay put
    e.reset(seed=0)
    g0 = e.race_state()["gate_pos"].copy()
    for _ in range(10):
        e.step(e.hover_action())
    assert np.array_equal(e.race_state()["gate_pos"], g0)
    e.close()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown track 'oval'"):
        DroneRaceEnv(track="oval")
    with pytest.raises(ValueError, match="gate_textures"):
        DroneRaceEnv(gate_textures="val")
    with pytest.raises(ValueError, match="gate_shape"):
        DroneRaceEnv(gate_shape="hexagon")
    with pytest.raises(ValueError, match="reward weight 'speed'"):
        DroneRaceEnv(reward_weights={"speed": 1.0})
    with pytest.raises(ValueError, match="gate_size"):
        DroneRaceEnv(gate_size=0.1)


# ---------------------------------------------------------------- expert
def test_expert_completes_laps_with_default_randomization():
    e = DroneRaceEnv()
    expert = make_expert(e)
    wins, reasons = 0, []
    for seed in range(10):
        obs, _ = e.reset(seed=seed)
        expert.reset()
        while True:
            obs, _, term, trunc, info = e.step(expert.act(obs))
            if term or trunc:
                break
        wins += info["is_success"]
        reasons.append(info["crash_reason"])
        if info["is_success"]:
            assert info["gates_passed"] == e.n_gates and 0 < info["lap_time"] < 25
    assert wins >= 9, reasons
    e.close()


@pytest.mark.parametrize("track", ["figure_eight", "random"])
def test_expert_other_tracks_and_moving_gates(track):
    e = DroneRaceEnv(track=track, moving_gates=True)
    expert = make_expert(e)
    wins = 0
    for seed in range(4):
        obs, _ = e.reset(seed=seed)
        while True:
            obs, _, term, trunc, info = e.step(expert.act(obs))
            if term or trunc:
                break
        wins += info["is_success"]
    assert wins >= 3
    e.close()


@pytest.mark.parametrize("moving", [False, True])
def test_gate_culling_changes_nothing(moving):
    """Testing only the gates that may be in reach (the others provably are not) gives the
    same observations, rewards, passes and crashes as testing every gate every step, through
    an expert lap."""
    from simenvs.agents.experts import make as make_expert

    runs = []
    for cull in (True, False):
        e = DroneRaceEnv(moving_gates=moving, n_distractors=0)
        visits = []  # gates tested per step (None: all)

        def candidates(*a, cand=e._gate_candidates, visits=visits, cull=cull):
            visits.append(cand(*a) if cull else None)
            return visits[-1]

        e._gate_candidates = candidates
        expert = make_expert(e)
        obs, _ = e.reset(seed=4)
        expert.reset()
        out = []
        for _ in range(400):
            obs, r, term, trunc, info = e.step(expert.act(obs))
            out.append((obs, r, info["gates_passed"], info["crash_reason"]))
            if term or trunc:
                break
        runs.append(out)
        if cull:  # few full scans; otherwise the one or two gates near the quad
            assert sum(v is None for v in visits) < 0.1 * len(visits)
            assert np.mean([len(v) for v in visits if v is not None]) <= 2.5 < e.n_gates
        e.close()
    a, b = runs
    assert len(a) == len(b) and a[-1][2] >= 4
    for x, y in zip(a, b):
        assert np.array_equal(x[0], y[0]) and x[1:] == y[1:]


def test_seeded_rollout_is_pinned():
    """Obs and reward of a short default-randomization rollout, recorded before the speed work
    on the quadrotor step: a change here changes behaviour, not just speed."""
    env = DroneRaceEnv()
    obs, _ = env.reset(seed=3)
    total, obs_sum = 0.0, float(np.sum(obs, dtype=np.float64))
    for t in range(60):
        a = env.hover_action() + np.array(
            [0.2 * np.sin(t / 7), 0.1 * np.cos(t / 5), -0.05, 0.1 * np.sin(t / 3)]
        )
        obs, r, _, _, _ = env.step(np.clip(a, -1.0, 1.0))
        total += r
        obs_sum += float(np.sum(obs, dtype=np.float64))
    assert total == pytest.approx(-1.4792416694463428, rel=1e-6, abs=1e-6)
    assert obs_sum == pytest.approx(843.8013155468798, rel=1e-7)
    np.testing.assert_allclose(
        obs[:6], [6.15983, -4.22092, 2.19557, 0.05149, -3.50229, -0.44655], atol=2e-5
    )


def test_action_check_fast_path_matches_the_generic_one():
    """An in-bounds array of the action shape comes back as a float64 copy; anything else
    takes the generic path (clipping, reshaping, named errors)."""
    env = DroneRaceEnv()
    env.reset(seed=0)
    a = np.array([0.5, -1.0, 1.0, 0.0], np.float32)
    fast = env._check_action(a)
    assert fast.dtype == np.float64 and np.array_equal(fast, a) and fast is not a
    assert np.array_equal(env._check_action([2.0, 0, 0, -3.0]), [1.0, 0.0, 0.0, -1.0])
    assert np.array_equal(env._check_action(np.full((1, 4), 0.25)), np.full(4, 0.25))
    with pytest.raises(ValueError, match="non-finite"):
        env._check_action(np.array([np.nan, 0.0, 0.0, 0.0]))
    with pytest.raises(ValueError, match="shape"):
        env._check_action(np.zeros(3))
