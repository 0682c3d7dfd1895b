"""Natively batched vector env, its SB3 adapter and process workers (issue 11).

The reference everywhere is Gymnasium's ``SyncVectorEnv`` (or SB3's ``DummyVecEnv``) over the
single env with the same seeds: the batched env must produce the same observations, rewards,
terminations, truncations and infos step for step, through autoresets.
"""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from simenvs.core.example import ToyPushEnv
from simenvs.vector import BatchedVectorEnv, BatchOps
from simenvs.vector.sb3 import make_batched_vec_env

SPEC = {
    "dynamics.action_latency": {"dist": "categorical", "choices": [0, 1, 3]},
    "sensor.state.noise_std": [0.0, 0.05],
    "dynamics.box_mass": [0.5, 2.0],
    "dynamics.push_gain": [5.0, 40.0],
    "layout.box_x": [-0.3, 0.0],
}


def assert_same(a, b, where=""):
    """Deep equality of observations / info dicts (NaN equal to NaN)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (where, sorted(set(a) ^ set(b)))
        for k in a:
            assert_same(a[k], b[k], f"{where}/{k}")
        return
    if a is None or isinstance(a, str):
        assert a == b, (where, a, b)
        return
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == object:
        assert a.shape == b.shape, where
        for x, y in zip(a.ravel(), b.ravel()):
            assert_same(x, y, where)
        return
    assert a.shape == b.shape, (where, a.shape, b.shape)
    assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), (where, a, b)


def run_both(venv, ref, steps, seed=3, actions=None):
    """Step both vector envs with the same actions; compare everything; return #episode ends."""
    n = venv.num_envs
    o1, i1 = venv.reset(seed=seed)
    o2, i2 = ref.reset(seed=seed)
    assert_same(o1, o2, "reset obs")
    assert_same(i1, i2, "reset info")
    rng = np.random.default_rng(0)
    ends = 0
    shape = venv.single_action_space.shape
    for t in range(steps):
        a = rng.uniform(-1, 1, (n, *shape)) if actions is None else actions(t)
        r1, r2 = venv.step(a), ref.step(a)
        for k, name in enumerate(("obs", "reward", "terminated", "truncated", "info")):
            assert_same(r1[k], r2[k], f"step {t} {name}")
        if venv.autoreset_mode == AutoresetMode.DISABLED and (r1[2] | r1[3]).any():
            mask = r1[2] | r1[3]
            x, y = venv.reset(options={"reset_mask": mask}), ref.reset(options={"reset_mask": mask})
            assert_same(x[0], y[0], "masked reset obs")
            assert_same(x[1], y[1], "masked reset info")
        ends += int((r1[2] | r1[3]).sum())
    return ends


# ---- a vectorized fast path for the toy task (exercises the BatchOps machinery) ------------
class ToyPushOps(BatchOps):
    def __init__(self, venv):
        super().__init__(venv)
        self.box = venv.envs[0].model.body("box").id
        self.xfrc = self.batch.bind("xfrc_applied")
        self.qpos = self.batch.bind("qpos")
        self.qvel = self.batch.bind("qvel")
        self.gain = np.zeros(self.n)

    def on_reset(self, ids):
        for i in np.asarray(ids).tolist():
            self.gain[i] = self.envs[i].params["dynamics.push_gain"]

    def apply_actions(self, idx, applied):
        self.xfrc[self.rows(idx), self.box, :2] = applied * self.gain[idx, None]

    def evaluate(self, idx):
        x = self.qpos[idx, 0].copy()
        success = x > 0.5
        return x, success, {"is_success": success}

    def state_obs(self, idx):
        return np.concatenate([self.qpos[idx, :3], self.qvel[idx, :3]], axis=1).astype(np.float32)


class FastToyPush(ToyPushEnv):
    batch_ops = ToyPushOps


@pytest.mark.parametrize("task", [ToyPushEnv, FastToyPush], ids=["generic", "fast"])
@pytest.mark.parametrize("mode", ["NextStep", "SameStep", "Disabled"])
def test_batched_equals_single_envs_step_for_step(task, mode):
    kw = {"obs_mode": "state", "randomization": SPEC, "n_textures": 1}
    venv = BatchedVectorEnv(task, 3, autoreset_mode=mode, **kw)
    assert (venv.ops is not None) == (task is FastToyPush)
    ref = SyncVectorEnv([lambda: task(**kw) for _ in range(3)], autoreset_mode=mode)
    ends = run_both(venv, ref, steps=110)
    assert ends >= 3  # episodes of 50 steps: every sim finished at least once
    # per-sim dynamics really differ (the fast path's batch holds per-sim masses; the generic
    # path steps each task's own model)
    box = venv.envs[0].model.body("box").id
    if venv.batch is not None:
        masses = venv.batch.expand("body_mass")[:, box]
    else:
        masses = np.array([e.model.body_mass[box] for e in venv.envs])
    assert len(set(masses.tolist())) == 3
    venv.close()
    ref.close()


def test_widened_spec_gets_per_sim_fields():
    """Sims start identical (no randomization); a wider spec set at run time makes masses differ
    per sim from the next episode, and the batch follows (fields expanded lazily)."""
    kw = {"obs_mode": "state", "randomization": "none", "n_textures": 1}
    venv = BatchedVectorEnv(FastToyPush, 3, **kw)
    ref = SyncVectorEnv([lambda: FastToyPush(**kw) for _ in range(3)])
    run_both(venv, ref, steps=5)
    box = venv.envs[0].model.body("box").id
    assert "body_mass" not in venv.physics.sync.fields  # nothing varies yet
    wide = {"dynamics.box_mass": [0.5, 2.0], "dynamics.push_gain": [5.0, 40.0]}
    venv.set_randomization(wide)
    ref.call("set_randomization", wide)
    run_both(venv, ref, steps=60, seed=7)
    masses = venv.batch.expand("body_mass")[:, box]
    assert len(set(masses.tolist())) == 3
    np.testing.assert_array_equal(masses, [e.model.body_mass[box] for e in venv.envs])
    venv.close()
    ref.close()


def test_drone_race_fast_path_equals_single_envs(monkeypatch):
    """DroneRace's vectorized ops vs the single env, flown by the scripted expert through gate
    passes and a lap (static gates), and with moving gates; the gate scan runs compiled."""
    import simenvs.vector.quadrotor as vq
    from simenvs.agents.experts.drone_race import DroneRaceExpert
    from simenvs.envs.drone_race.env import DroneRaceEnv

    calls = {"scan": 0}
    scan = vq.DroneRaceOps._scan

    def count_scan(self, *a):
        calls["scan"] += 1
        return scan(self, *a)

    monkeypatch.setattr(vq.DroneRaceOps, "_scan", count_scan)
    for moving, steps in ((False, 420), (True, 150)):
        kw = {"obs_mode": "state", "randomization": "default", "moving_gates": moving}
        venv = BatchedVectorEnv(DroneRaceEnv, 3, **kw)
        assert venv.ops is not None
        ref = SyncVectorEnv([lambda kw=kw: DroneRaceEnv(**kw) for _ in range(3)])
        experts = [DroneRaceExpert(e) for e in ref.envs]
        state = {"obs": None, "done": np.zeros(3, dtype=bool)}

        def actions(t, experts=experts, state=state):
            for i in np.flatnonzero(state["done"]):
                experts[i].reset()
            return np.stack([x.act(o) for x, o in zip(experts, state["obs"])])

        orig_step, orig_reset = ref.step, ref.reset

        def step(a, orig_step=orig_step, state=state):
            out = orig_step(a)
            state["obs"], state["done"] = out[0], out[2] | out[3]
            return out

        def reset(orig_reset=orig_reset, state=state, **kwargs):
            out = orig_reset(**kwargs)
            state["obs"] = out[0]
            return out

        ref.step, ref.reset = step, reset
        for x in experts:
            x.reset()
        run_both(venv, ref, steps, actions=actions)
        gates = venv.ops.passed.max()
        assert gates >= (8 if not moving else 1), gates
        venv.close()
        ref.close()
    assert calls["scan"] > 0  # the gate passes above went through the scan


def test_normal_buffer_hands_out_each_stream_in_order():
    """Blocks drawn ahead, large takes (and fills) straight from the generator after what is
    buffered, and rewinds before others draw: every sim sees its own stream's values in
    order."""
    from types import SimpleNamespace

    from simenvs.vector.ops import NormalBuffer

    gens = [np.random.default_rng(s) for s in (1, 2)]
    envs = [SimpleNamespace(streams=SimpleNamespace(noise=g)) for g in gens]
    refs = [np.random.default_rng(s) for s in (1, 2)]
    buf = NormalBuffer(envs, block=64)
    rng = np.random.default_rng(0)
    for t in range(60):
        rows = np.flatnonzero(rng.random(2) < 0.7)
        k = int(rng.choice([1, 5, 18, 40, 100]))
        if t % 3 == 2:  # fill: one sim's values into a given row (the IMU noise refill)
            got = np.zeros((len(rows), k))
            for j, i in enumerate(rows.tolist()):
                buf.fill(i, got[j])
        else:
            got = buf.take(rows, k)
        for j, i in enumerate(rows.tolist()):
            np.testing.assert_array_equal(got[j], refs[i].standard_normal(k), err_msg=f"{t}")
        if t % 7 == 0:  # someone else draws from sim 0's stream
            buf.rewind([0])
            np.testing.assert_array_equal(
                envs[0].streams.noise.standard_normal(3), refs[0].standard_normal(3)
            )


def _loop_of_single_envs(venv, factory, steps, seed=0):
    """Compare with plain single envs stepped in a loop (NEXT_STEP autoreset by hand), for
    tasks whose infos Gymnasium's SyncVectorEnv cannot batch."""
    n = venv.num_envs
    envs = [factory() for _ in range(n)]
    obs, _ = venv.reset(seed=seed)
    ref = [e.reset(seed=seed + i)[0] for i, e in enumerate(envs)]
    np.testing.assert_array_equal(obs, np.stack(ref))
    done = np.zeros(n, dtype=bool)
    neutral = envs[0].neutral_action()
    rng = np.random.default_rng(1)
    ends = 0
    for t in range(steps):
        a = neutral + rng.normal(0.0, 0.3, (n, neutral.size))
        o, r, te, tr, _ = venv.step(a)
        for i, e in enumerate(envs):
            if done[i]:
                oi, ri, tei, tri = e.reset()[0], 0.0, False, False
            else:
                oi, ri, tei, tri, _ = e.step(a[i])
            np.testing.assert_array_equal(o[i], oi, err_msg=f"step {t} env {i}")
            assert (r[i], te[i], tr[i]) == (ri, tei, tri), (t, i)
        done = te | tr
        ends += int(done.sum())
    for e in envs:
        e.close()
    return ends


def test_tasks_that_recompile_or_swap_terrain():
    """Grasp recompiles its scene per episode with other geom counts; RooftopLanding rewrites
    height-field and mesh data. Neither has a vectorized fast path: each task steps its own
    MjData, and both match the single env."""
    from simenvs.vector.batched import TaskFactory

    for env_id, n, steps in (("simenvs/Grasp-v0", 2, 110), ("simenvs/RooftopLanding-v0", 2, 30)):
        kw = {"obs_mode": "state", "max_episode_steps": 100}
        venv = BatchedVectorEnv(env_id, n, **kw)
        ends = _loop_of_single_envs(venv, TaskFactory(env_id, kw), steps)
        assert venv.physics.mode == "direct" and venv.batch is None, env_id
        if "Grasp" in env_id:
            assert ends >= n  # every sim reset (and recompiled) at least once
        venv.close()


def test_render_fast_path_matches_single_envs():
    """render() of the fast path materializes each sim (state, distractors) into its task, with
    kinematics recomputed at the current state (mj_forward): the single env's frame after
    mj_forward, not its one-substep-old kinematics."""
    import mujoco

    kw = {"obs_mode": "state", "randomization": "default", "render_mode": "rgb_array",
          "width": 32, "height": 32, "n_textures": 1}  # fmt: skip
    venv = BatchedVectorEnv(FastToyPush, 2, **kw)
    ref = SyncVectorEnv([lambda: FastToyPush(**kw) for _ in range(2)])
    run_both(venv, ref, steps=7)
    for e in ref.envs:
        mujoco.mj_forward(e.unwrapped.model, e.unwrapped.data)
    frames, expected = venv.render(), ref.render()
    for f, g in zip(frames, expected):
        np.testing.assert_array_equal(f, g)
    run_both(venv, ref, steps=3, seed=11)  # stepping after a render stays exact
    venv.close()
    ref.close()


def test_image_observations_match_single_envs():
    kw = {"obs_mode": "state_rgb", "randomization": "default", "image_size": 24, "n_textures": 2}
    venv = BatchedVectorEnv(ToyPushEnv, 2, **kw)
    ref = SyncVectorEnv([lambda: ToyPushEnv(**kw) for _ in range(2)])
    run_both(venv, ref, steps=8)
    obs = venv.step(np.zeros((2, 2)))[0]
    # randomized appearance: the two sims look different
    assert np.abs(obs["image"][0].astype(int) - obs["image"][1]).mean() > 5
    venv.close()
    ref.close()


@pytest.mark.parametrize(
    "task, failure",
    [(ToyPushEnv, "diverged"), (FastToyPush, "diverged"), (ToyPushEnv, "mujoco_error")],
    ids=["generic", "fast", "generic-mujoco-error"],
)
def test_physics_error_resets_only_that_sim(task, failure):
    """A sim that diverges, or whose own physics raises a MuJoCo error (the generic path steps
    each task's own MjData), ends its episode with the reason in its info; the others step on
    untouched, and the next step resets it (NEXT_STEP)."""
    import mujoco

    kw = {"obs_mode": "state", "randomization": "default", "n_textures": 1}
    venv = BatchedVectorEnv(task, 3, **kw)
    ref = SyncVectorEnv([lambda: task(**kw) for _ in range(3)])
    venv.reset(seed=1)
    ref.reset(seed=1)
    a = np.full((3, 2), 0.3)
    for _ in range(3):
        venv.step(a)
        ref.step(a)
    if failure == "mujoco_error":

        def fail() -> None:
            raise mujoco.FatalError("mj_stackAlloc: out of memory")

        venv.envs[1]._integrate = fail
        reason = "MuJoCo error: mj_stackAlloc: out of memory"
    elif venv.ops is None:  # sim 1 blows up during the next step
        venv.envs[1].data.qvel[0] = 1e30
        reason = "diverged"
    else:
        venv.batch.qvel[1, 0] = 1e30
        reason = "diverged"
    obs, rew, term, trunc, info = venv.step(a)
    obs_r, rew_r, *_ = ref.step(a)
    assert trunc.tolist() == [False, True, False] and not term.any()
    assert info["_physics_error"].tolist() == [False, True, False]
    assert reason in info["physics_error"][1] and rew[1] == 0.0
    np.testing.assert_array_equal(obs[[0, 2]], obs_r[[0, 2]])  # the others continue untouched
    if failure == "mujoco_error":
        del venv.envs[1]._integrate
    obs, _, term, trunc, info = venv.step(a)  # NEXT_STEP: sim 1 is reset, the others step
    assert np.all(np.isfinite(obs)) and "params" in info
    assert info["_params"].tolist() == [False, True, False]
    np.testing.assert_array_equal(obs[[0, 2]], ref.step(a)[0][[0, 2]])
    venv.close()
    ref.close()


def test_set_randomization_reaches_every_sim_and_sb3_adapter():
    fixed = {"dynamics.box_mass": {"dist": "constant", "value": 3.0}}
    venv = BatchedVectorEnv(FastToyPush, 3, obs_mode="state", n_textures=1)
    venv.reset(seed=0)
    venv.call("set_randomization", fixed)
    _, info = venv.reset()
    np.testing.assert_array_equal(info["params"]["dynamics.box_mass"], [3.0, 3.0, 3.0])
    box = venv.envs[0].model.body("box").id
    np.testing.assert_allclose(venv.batch.expand("body_mass")[:, box], 3.0)
    venv.close()

    sb3 = make_batched_vec_env(ToyPushEnv, 3, obs_mode="state", n_textures=1)
    sb3.reset()
    sb3.env_method("set_randomization", fixed)
    sb3.reset()
    assert [p["dynamics.box_mass"] for p in sb3.get_attr("params")] == [3.0] * 3
    assert sb3.env_method("randomization_summary", indices=[1])[0]["dynamics.box_mass"] == {
        "dist": "constant",
        "value": 3.0,
    }
    sb3.close()


def test_sb3_adapter_equals_dummy_vec_env_and_trains():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

    kw = {"obs_mode": "state", "randomization": "default", "n_textures": 1}
    b = make_batched_vec_env(FastToyPush, 3, **kw)
    d = DummyVecEnv([lambda: ToyPushEnv(**kw) for _ in range(3)])
    b.seed(5)
    d.seed(5)
    np.testing.assert_array_equal(b.reset(), d.reset())
    rng = np.random.default_rng(1)
    terminal = 0
    for _ in range(60):
        a = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
        (o1, r1, d1, i1), (o2, r2, d2, i2) = b.step(a), d.step(a)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(d1, d2)
        for x, y in zip(i1, i2):
            assert ("terminal_observation" in x) == ("terminal_observation" in y)
            if "terminal_observation" in y:
                terminal += 1
                np.testing.assert_array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] == y["TimeLimit.truncated"]
                assert x["is_success"] == y["is_success"]
    assert terminal == 3
    d.close()
    model = PPO("MlpPolicy", VecMonitor(b), n_steps=16, batch_size=24, n_epochs=1, verbose=0)
    model.learn(48)
    assert model.num_timesteps >= 48
    b.close()


def test_make_vec_vector_entry_point():
    import gymnasium as gym

    env_id = "simenvs/TestToyPush-v0"
    gym.register(
        env_id,
        entry_point="simenvs.core.example:ToyPushEnv",
        vector_entry_point="simenvs.vector.entry:TestToyPush_v0",
        max_episode_steps=20,
    )
    try:
        venv = gym.make_vec(
            env_id, num_envs=4, vectorization_mode="vector_entry_point", nthread=1, n_textures=1
        )
        assert isinstance(venv, BatchedVectorEnv) and venv.nthread == 1
        assert venv.max_episode_steps == 20
        venv.reset(seed=0)
        trunc = np.zeros(4, dtype=bool)
        for _ in range(20):
            _, _, term, trunc, _ = venv.step(np.zeros((4, 2)))
        assert trunc.all() or term.any()
        venv.close()
    finally:
        del gym.registry[env_id]
    from simenvs.vector.entry import vector_entry_point_for

    assert vector_entry_point_for("simenvs/DroneRace-v0") == "simenvs.vector.entry:DroneRace_v0"
    with pytest.raises(ValueError, match="simenvs id"):
        vector_entry_point_for("CartPole-v1")


def test_bad_input_errors():
    with pytest.raises(ValueError, match="num_envs"):
        BatchedVectorEnv(ToyPushEnv, 0)
    with pytest.raises(ValueError, match="autoreset_mode"):
        BatchedVectorEnv(ToyPushEnv, 1, autoreset_mode="sometimes")
    venv = BatchedVectorEnv(ToyPushEnv, 2, n_textures=1)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 2)))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="env 1 has non-finite"):
        venv.step(np.array([[0.0, 0.0], [np.nan, 0.0]]))
    # huge but finite actions overflow the one-sum finiteness check: clipped, not an error
    venv.step(np.full((2, 2), 1e308))
    venv.close()


def test_process_workers_accept_spec_changes():
    """gym.make_vec sync/async and SB3 SubprocVecEnv over a registered simenvs id take a new
    randomization spec at run time. Workers start with forkserver: a fresh interpreter that
    must import simenvs itself to find the id."""
    import gymnasium as gym

    import simenvs  # noqa: F401  (registers the ids in this process)
    from simenvs.vector.workers import make_sb3_vec_env

    env_id = "simenvs/DroneRace-v0"
    fixed = {"dynamics.quad.mass": {"dist": "constant", "value": 0.82}}
    for mode, vkw in (("sync", {}), ("async", {"context": "forkserver"})):
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, vector_kwargs=vkw)
        try:
            venv.reset(seed=0)
            venv.call("set_randomization", fixed)
            _, info = venv.reset()
            np.testing.assert_array_equal(info["params"]["dynamics.quad.mass"], [0.82, 0.82])
            obs, *_ = venv.step(np.zeros((2, 4)))
            assert obs.shape == (2, 34)
        finally:
            venv.close()
    sb3 = make_sb3_vec_env(env_id, 2, "subproc", start_method="forkserver")
    try:
        sb3.reset()
        sb3.env_method("set_randomization", fixed)
        sb3.reset()
        assert [p["dynamics.quad.mass"] for p in sb3.get_attr("params")] == [0.82, 0.82]
    finally:
        sb3.close()


def test_drone_race_fast_path_resets_with_noise_latency_and_wind():
    """The fast path steps every sim, finished ones included, and resets those right after
    (NEXT_STEP): with IMU and state noise, action latency and wind, short episodes (many
    autoresets mid-batch) still equal the single envs step for step."""
    from simenvs.envs.drone_race.env import DroneRaceEnv

    spec = {
        "dynamics.quad.wind": {"dist": "uniform", "low": [-1.0, -1.0, -0.3], "high": [1, 1, 0.3]},
        "sensor.imu.pos_noise_std": [0.0, 0.02],
        "sensor.imu.gyro_noise_std": [0.0, 0.05],
        "sensor.state.noise_std": {"dist": "categorical", "choices": [0.0, 0.03]},
        "dynamics.action_latency": {"dist": "categorical", "choices": [0, 2]},
        "dynamics.quad.mass": [0.7, 0.9],
    }
    kw = {"obs_mode": "state", "randomization": spec, "max_episode_steps": 25}
    venv = BatchedVectorEnv(DroneRaceEnv, 4, **kw)
    assert venv.ops is not None and venv.ops.steps_finished
    ref = SyncVectorEnv([lambda: DroneRaceEnv(**kw) for _ in range(4)])
    hover = venv.envs[0].neutral_action()
    rng = np.random.default_rng(2)
    ends = run_both(venv, ref, 90, actions=lambda t: hover + rng.normal(0.0, 0.2, (4, 4)))
    assert ends >= 8  # every sim reset several times, at different steps
    masses = venv.batch.expand("body_mass")[:, venv.envs[0].quad.body_id]
    assert len(set(masses.tolist())) == 4
    venv.close()
    ref.close()


def test_process_pool_equals_sync_and_reports_dead_worker():
    """ProcessPoolVectorEnv: 2 workers x 2 envs equal a SyncVectorEnv of the 4 envs (same
    seeds, autoresets, infos); call reaches every env; a killed worker raises, not hangs."""
    from simenvs.vector.executor import WorkerDiedError
    from simenvs.vector.pool import ProcessPoolVectorEnv
    from simenvs.vector.workers import EnvFn

    toy = "simenvs.core.example:ToyPushEnv"
    kw = {"obs_mode": "state", "randomization": SPEC, "n_textures": 1}
    venv = ProcessPoolVectorEnv(toy, num_workers=2, envs_per_worker=2, **kw)
    ref = SyncVectorEnv([EnvFn(toy, kw) for _ in range(4)])
    try:
        assert run_both(venv, ref, 60) >= 4
        venv.call("set_randomization", "none")  # from the next episode on, in every worker
        _, info = venv.reset(seed=1)
        np.testing.assert_array_equal(info["params"]["dynamics.box_mass"], [1.0] * 4)
        venv.processes[1].kill()
        with pytest.raises(WorkerDiedError, match="worker 1"):
            venv.step(np.zeros((4, 2)))
    finally:
        venv.close()
        ref.close()
    with pytest.raises(ValueError, match="envs_per_worker"):
        ProcessPoolVectorEnv(toy, 2, 0)
