"""SimOpt: discrepancy, REPS/CMA-ES, stand-in reality, the loop (closed loop, replay, resume, CLI).

The algorithms are proven on a point mass with hidden mass and damping (simenvs.simopt.toy),
whose truth sits just outside the training prior; the drone test at the end recovers a drone
env's hidden parameters with the scripted expert as the policy.
"""

from __future__ import annotations

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest

from simenvs.data import load_rollouts
from simenvs.reality import EnvReality, make_reality, register_reality
from simenvs.simopt import (
    CMAES,
    REPS,
    Discrepancy,
    Job,
    LocalExecutor,
    ParamSpace,
    RolloutTask,
    SimOpt,
    SimOptConfig,
    align,
    reps_weights,
    sanitize_costs,
)
from simenvs.simopt.env_params import prior_range
from simenvs.simopt.toy import PointMassEnv, make_pd

LAYOUT = [("pos", 2, "m"), ("vel", 1, "m/s")]
PARAMS = ["dynamics.mass", "dynamics.damping"]


# ----------------------------------------------------------------------------- discrepancy


def test_discrepancy_formula_weights_and_subset():
    real = np.zeros((4, 3))
    sim = np.zeros((4, 3))
    sim[:, 0] = 1.0  # pos x off by 1
    sim[:, 2] = 2.0  # vel off by 2
    d = Discrepancy(smooth_sigma=0)
    # per step: 0.5*(1+2) + 1.0*(1+4) = 6.5, four steps
    assert d(sim, real, LAYOUT) == pytest.approx(26.0)
    assert Discrepancy(smooth_sigma=0, fields=["pos"])(sim, real, LAYOUT) == pytest.approx(6.0)
    w = Discrepancy(smooth_sigma=0, weights={"vel": 0.5})  # W*diff = 1 for vel
    assert w(sim, real, LAYOUT) == pytest.approx(4 * (0.5 * 2 + 2))
    assert Discrepancy(smooth_sigma=0, reduce="mean")(sim, real, LAYOUT) == pytest.approx(6.5)
    assert d(real, real, LAYOUT) == 0.0
    bad = sim.copy()
    bad[2, 0] = np.nan
    assert d(bad, real, LAYOUT) == np.inf
    with pytest.raises(ValueError, match=r"unknown observation fields \['rot'\]"):
        Discrepancy(fields=["rot"])(sim, real, LAYOUT)
    with pytest.raises(ValueError, match="unknown alignment 'nearest'"):
        Discrepancy(align="nearest")


def test_smoothing_suppresses_sensor_noise():
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2, 200)[:, None]
    clean = np.hstack([np.sin(t), np.cos(t), t])
    noisy = clean + rng.normal(0, 0.05, clean.shape)
    raw = Discrepancy(smooth_sigma=0)(noisy, clean, LAYOUT)
    smooth = Discrepancy(smooth_sigma=5)(noisy, clean, LAYOUT)
    assert smooth < 0.3 * raw
    # a real dynamics difference survives smoothing
    assert Discrepancy(smooth_sigma=5)(clean * 1.2, clean, LAYOUT) > 5 * smooth


def test_alignment_of_unequal_lengths():
    a = np.arange(5.0)[:, None]
    b = np.arange(3.0)[:, None]
    ha, hb = align(a, b, "hold")
    assert hb[:, 0].tolist() == [0, 1, 2, 2, 2] and len(ha) == 5
    ta, tb = align(a, b, "truncate")
    assert len(ta) == len(tb) == 3
    xa, xb = align(a, b, "time", np.arange(5) * 0.1, np.array([0.05, 0.15, 0.25]))
    np.testing.assert_allclose(xa[:, 0], [0.5, 1.5, 2.5])
    # an early crash in sim keeps costing: hold > truncate
    real = np.tile(np.arange(10.0)[:, None], (1, 3))
    d_hold = Discrepancy(smooth_sigma=0)(real[:4], real, LAYOUT)
    d_trunc = Discrepancy(smooth_sigma=0, align="truncate")(real[:4], real, LAYOUT)
    assert d_trunc == 0 and d_hold > 0


# ------------------------------------------------------------------------------ optimizers


def _quadratic(x, truth):
    return ((x - truth) ** 2).sum(axis=1)


def test_reps_kl_bound_and_min_temperature():
    c = np.random.default_rng(0).uniform(0, 10, 50)
    w, eta, kl = reps_weights(c, epsilon=1.0, min_temperature=1e-3)
    assert kl == pytest.approx(1.0, abs=1e-3) and eta > 1e-3
    assert w.sum() == pytest.approx(1.0) and np.argmax(w) == np.argmin(c)
    w, eta, kl = reps_weights(c, epsilon=100.0, min_temperature=0.05)
    assert eta == pytest.approx(0.05) and kl < 100  # the temperature floor binds
    w, eta, kl = reps_weights(np.full(5, 3.0), 1.0)  # equal costs: uniform weights
    np.testing.assert_allclose(w, 0.2)


def test_nonfinite_costs_become_worst():
    c, n = sanitize_costs([1.0, np.nan, 3.0, np.inf])
    assert c.tolist() == [1.0, 3.0, 3.0, 3.0] and n == 2
    with pytest.raises(ValueError, match="all 2 costs are non-finite"):
        sanitize_costs([np.nan, np.inf])


@pytest.mark.parametrize("kind", ["reps", "cmaes"])
def test_optimizer_recovers_truth_outside_prior(kind):
    space = ParamSpace(("a", "b"), [0.0, 0.0], [10.0, 5.0])
    truth = np.array([7.0, 0.2])  # 2.5 and 1.9 prior stds away
    mean0, cov0 = np.array([4.0, 2.0]), np.diag([1.2**2, 0.9**2])
    opt = (
        REPS(space, mean0, cov0, seed=0)
        if kind == "reps"
        else CMAES(space, mean0, cov0, popsize=16, seed=0)
    )
    rng = np.random.default_rng(1)
    for _ in range(15):
        x = opt.ask(16)
        assert np.all(x >= space.low) and np.all(x <= space.high)  # clipped to bounds
        c = _quadratic(x, truth) + rng.normal(0, 1e-3, 16)
        c[0] = np.nan  # a diverged simulation
        opt.tell(x, c)
    assert np.abs(opt.mean - truth).max() < 0.1
    assert np.all(np.sqrt(np.diag(opt.cov)) < 0.5)
    # state survives JSON, and continues identically (REPS: same samples too)
    state = json.loads(json.dumps(opt.state_dict()))
    clone = (
        REPS(space, mean0, cov0, seed=99)
        if kind == "reps"
        else CMAES(space, mean0, cov0, popsize=16, seed=0)
    )
    clone.load_state_dict(state)
    np.testing.assert_allclose(clone.mean, opt.mean)
    np.testing.assert_allclose(clone.cov, opt.cov, atol=1e-12)
    if kind == "reps":
        np.testing.assert_allclose(clone.ask(16), opt.ask(16))


def test_reps_variance_floor_and_shrink_limit():
    space = ParamSpace(("a",), [-10.0], [10.0])
    opt = REPS(space, [0.0], [[4.0]], min_std=0.3, shrink_limit=0.7)
    stds = [2.0]
    for _ in range(30):
        x = opt.ask(8)
        opt.tell(x, np.abs(x[:, 0] - 1.0))
        stds.append(float(np.sqrt(opt.cov[0, 0])))
    assert min(stds) >= 0.3 - 1e-9  # the floor holds: the search never collapses
    assert all(b >= 0.7 * a - 1e-9 for a, b in zip(stds, stds[1:]))
    no_limit = REPS(space, [0.0], [[4.0]], min_std=1e-6, shrink_limit=None, seed=0)
    x = no_limit.ask(8)
    no_limit.tell(x, np.abs(x[:, 0] - 1.0))
    assert np.sqrt(no_limit.cov[0, 0]) < 0.7 * 2.0  # what the limit prevents


def test_cmaes_popsize_is_fixed():
    opt = CMAES(ParamSpace(("a",), [0.0], [1.0]), [0.5], [[0.01]], popsize=6)
    with pytest.raises(ValueError, match="asks 6 samples per update, not 5"):
        opt.ask(5)


# ---------------------------------------------------------------------- stand-in reality


def test_reality_names_and_registry():
    with pytest.raises(ValueError, match=r"unknown part\(s\) \['wind'\]"):
        make_reality("proxy:hidden+wind", PointMassEnv)
    with pytest.raises(ValueError, match="unknown reality 'sim:x'"):
        make_reality("sim:x", PointMassEnv)
    register_reality("test:custom", lambda env_id, **kw: ("built", env_id, kw), overwrite=True)
    assert make_reality("test:custom", "E", a=1) == ("built", "E", {"a": 1})
    with pytest.raises(ValueError, match="already registered"):
        register_reality("test:custom", lambda env_id: None)


def test_hidden_truth_sits_outside_the_training_prior():
    real = make_reality("proxy:hidden", PointMassEnv, params=PARAMS, seed=0)
    probe = PointMassEnv()
    for name in PARAMS:
        lo, hi = prior_range(probe, name)
        v = real.truth[name]
        assert v < lo or v > hi, f"{name}={v} inside the prior [{lo}, {hi}]"
        assert abs(v - np.clip(v, lo, hi)) <= 0.2 * (hi - lo)  # just outside, not absurd
    data = real.collect(make_pd, 2, seed=5)
    assert all(set(e.params) == {"layout.goal"} for e in data.episodes)  # no leak of truth
    # the episodes really ran with the hidden values: the sim with them reproduces them
    task = RolloutTask(PointMassEnv, make_pd, {"randomization": "none"})
    ep = data.episodes[0]
    job = Job({**ep.params, **real.truth}, seed=ep.seed, max_steps=len(ep))
    np.testing.assert_allclose(task.run_many([job])[0].obs, ep.obs, atol=1e-6)
    job.params["dynamics.mass"] = 1.0
    assert np.abs(task.run_many([job])[0].obs - ep.obs).max() > 0.01


def _response(effects, seed=0):
    real = EnvReality(
        PointMassEnv, truth={"layout.goal": [0.5, 0.0]}, effects=effects,
        env_kwargs={"randomization": "none"},
    )  # fmt: skip
    return real.collect(make_pd, 1, seed=seed).episodes[0]


def test_unmodeled_effects_change_reality():
    base = _response([])
    lat = _response(["latency"])
    # one extra step of latency: the puck starts moving one control step later
    assert base.obs[1, 2] > 0.01 and abs(lat.obs[1, 2]) < 1e-9
    np.testing.assert_allclose(lat.obs[2, 2], base.obs[1, 2], rtol=1e-6)
    noisy = _response({"noise": {"std": 0.02}})
    resid = noisy.obs[:, 4:6] - np.array([0.5, 0.0])  # goal is constant: what varies is noise
    assert 0.01 < resid.std() < 0.03
    motor = _response({"motor": {"gamma": 2.0, "gain": 0.5}})
    assert motor.obs[1, 2] < 0.6 * base.obs[1, 2]


# ------------------------------------------------------------------------------- the loop


def _config(**kw):
    base = dict(
        env_id="toy", params=PARAMS, iterations=3, real_episodes=2, samples=12, updates=3,
        plot=False,
    )  # fmt: skip
    return SimOptConfig(**{**base, **kw})


def test_simopt_recovers_hidden_point_mass(tmp_path):
    real = make_reality("proxy:hidden", PointMassEnv, params=PARAMS, seed=1)
    so = SimOpt(
        _config(iterations=4), tmp_path, reality=real, policy=make_pd,
        env=PointMassEnv, log=None,
    )  # fmt: skip
    s = so.run()
    err0, err = s["prior_rel_error"], s["rel_error"]
    for n in PARAMS:
        assert err[n] < 0.1 or err[n] < err0[n] / 5, (n, err0[n], err[n])
    h = so.history
    assert h[-1]["discrepancy_after"] < 0.2 * h[0]["discrepancy_before"]
    assert so.plot().stat().st_size > 10_000
    dist = json.loads((tmp_path / "distribution.json").read_text())
    assert dist["gaussian"]["names"] == PARAMS
    # the adapted distribution plugs into the env as a randomization spec
    env = PointMassEnv(randomization=dist["spec"])
    _, info = env.reset(seed=0)
    assert abs(info["params"]["dynamics.mass"] - s["mean"]["dynamics.mass"]) < 0.2
    assert load_rollouts(tmp_path / "real" / "iter_003.npz").source == "proxy:hidden"


def test_replay_mode_recovers_from_logs_only(tmp_path):
    """DROPO-style: only recorded files, actions replayed open loop from recorded states."""
    real = make_reality("proxy:hidden", PointMassEnv, params=PARAMS, seed=2)
    data = real.collect(make_pd, 2, seed=3)
    from simenvs.data import save_rollouts
    from simenvs.simopt import FileReality

    path = save_rollouts(data, tmp_path / "logs.npz")
    cfg = _config(mode="replay", iterations=4)
    so = SimOpt(cfg, tmp_path / "run", reality=FileReality(path), env=PointMassEnv, log=None)
    s = so.run()
    for n in PARAMS:
        err = abs(s["mean"][n] - real.truth[n]) / real.truth[n]
        err0 = abs(s["prior_mean"][n] - real.truth[n]) / real.truth[n]
        assert err < 0.1 or err < err0 / 5, (n, err0, err)


def test_hardware_hooks_callback_and_state_setter(tmp_path):
    """Hardware paths: a callback that writes a file, and replay from logged observations
    (no simulator state) through a user state_setter."""
    from simenvs.data import save_rollouts
    from simenvs.simopt import CallbackReality, Replay

    truth = {"dynamics.mass": 1.7, "dynamics.damping": 0.4}
    proxy = EnvReality(PointMassEnv, truth=truth, env_kwargs={"randomization": "none"},
                       record_sim_state=False)  # fmt: skip
    calls = []

    def robot(policy, n, iteration, seed):
        calls.append((n, iteration, seed))
        return save_rollouts(proxy.collect(policy, n, seed=seed), tmp_path / f"run{iteration}.npz")

    data = CallbackReality(robot, name="lab").collect(make_pd, 2, iteration=0, seed=7)
    assert calls == [(2, 0, 7)] and len(data.episodes) == 2
    ep = data.episodes[0]
    assert ep.sim_state is None

    def from_obs(env, obs, _state):  # what a user writes for their robot's logs
        d = env.unwrapped.data
        d.qpos[:], d.qvel[:] = obs[0:2], obs[2:4]

    task = RolloutTask(PointMassEnv, None, {"randomization": "none"})
    replay = Replay(ep.actions, ep.obs, state_setter=from_obs, reset_every=10)
    out = task.run_many([Job({**ep.params, **truth}, ep.seed, replay=replay)])[0]
    np.testing.assert_allclose(out.obs, ep.obs, atol=1e-5)  # truth reproduces the log
    wrong = task.run_many([Job({**ep.params, "dynamics.mass": 1.0}, ep.seed, replay=replay)])[0]
    assert np.abs(wrong.obs - ep.obs).max() > 1e-3
    with pytest.raises(ValueError, match="needs recorded sim_state or a state_setter"):
        task.run_many([Job(dict(ep.params), ep.seed, replay=Replay(ep.actions, ep.obs))])


class _Killed(Exception):
    pass


class _DiesAt:
    def __init__(self, inner, iteration):
        self.inner, self.iteration = inner, iteration
        self.name, self.truth = inner.name, inner.truth

    def collect(self, policy, n, *, iteration, seed):
        if iteration == self.iteration:
            raise _Killed
        return self.inner.collect(policy, n, iteration=iteration, seed=seed)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    real = make_reality("proxy:hidden", PointMassEnv, params=PARAMS, seed=1)
    cfg = dict(iterations=3, samples=8, updates=2)
    full = SimOpt(
        _config(**cfg), tmp_path / "a", reality=real, policy=make_pd, env=PointMassEnv, log=None
    ).run()
    dying = _DiesAt(real, iteration=2)
    with pytest.raises(_Killed):
        SimOpt(
            _config(**cfg), tmp_path / "b", reality=dying, policy=make_pd, env=PointMassEnv,
            log=None,
        ).run()  # fmt: skip
    assert json.loads((tmp_path / "b" / "simopt.json").read_text())["completed"] == 2
    with pytest.raises(FileExistsError, match="resume it"):
        SimOpt(_config(**cfg), tmp_path / "b", reality=real, policy=make_pd, env=PointMassEnv)
    resumed = SimOpt(
        _config(**cfg), tmp_path / "b", reality=real, policy=make_pd, env=PointMassEnv,
        resume=True, log=None,
    )  # fmt: skip
    assert resumed.completed == 2
    out = resumed.run()
    assert out["iterations"] == 3
    for n in PARAMS:
        assert out["mean"][n] == pytest.approx(full["mean"][n], rel=1e-9)
    with pytest.raises(ValueError, match="optimizer='reps', this run has 'cmaes'"):
        SimOpt(
            _config(optimizer="cmaes", **cfg), tmp_path / "b", reality=real, policy=make_pd,
            env=PointMassEnv, resume=True,
        )  # fmt: skip


class _CountingExecutor:
    """A stand-in for a parallel executor: splits jobs in chunks, pickles the task."""

    def __init__(self):
        self.jobs = 0

    def __call__(self, task, jobs):
        task = pickle.loads(pickle.dumps(task))  # what a process/Ray pool would do
        out = []
        for i in range(0, len(jobs), 5):
            out += task.run_many(jobs[i : i + 5])
        self.jobs += len(jobs)
        return out


def test_custom_executor_and_trainer_hooks(tmp_path):
    real = make_reality("proxy:hidden", PointMassEnv, params=PARAMS, seed=1)
    ex = _CountingExecutor()
    requests = []

    def trainer(req):
        requests.append(req)
        assert req.spec["joint"][0]["names"] == PARAMS
        return make_pd

    cfg = _config(iterations=2, samples=6, updates=2, episodes_per_sample=1)
    SimOpt(
        cfg, tmp_path, reality=real, trainer=trainer, env=PointMassEnv, executor=ex, log=None
    ).run()
    # per iteration: 2 mean evaluations x 2 real episodes + 2 updates x 6 samples x 1 episode
    assert ex.jobs == 2 * (2 * 2 + 2 * 6)
    assert [r.iteration for r in requests] == [0, 1]
    assert not np.allclose(requests[1].distribution.mean, requests[0].distribution.mean)
    assert isinstance(LocalExecutor()(RolloutTask(PointMassEnv, make_pd), [Job({}, 0, 3)])[0].obs,
                      np.ndarray)  # fmt: skip


def test_cli_runs_and_resumes(tmp_path, capsys):
    from simenvs.simopt.cli import simopt_main

    if "SimOptPointMass-v0" not in gym.registry:
        gym.register("SimOptPointMass-v0", entry_point=PointMassEnv)
    args = [
        "SimOptPointMass-v0", "--real", "proxy:hidden", "--params", ",".join(PARAMS),
        "--iterations", "1", "--out", str(tmp_path), "--policy", "simenvs.simopt.toy:make_pd",
        "--real-episodes", "2", "--samples", "6", "--updates", "1",
    ]  # fmt: skip
    assert simopt_main(args) == 0
    out = capsys.readouterr().out
    summary = json.loads(out[out.index("{") :])
    assert summary["iterations"] == 1 and set(summary["mean"]) == set(PARAMS)
    with pytest.raises(SystemExit, match="already holds a SimOpt run"):
        simopt_main(args)
    args[args.index("--iterations") + 1] = "2"
    assert simopt_main([*args, "--resume"]) == 0
    state = json.loads((tmp_path / "simopt.json").read_text())
    assert state["completed"] == 2 and state["truth"] is not None
    assert (tmp_path / "simopt.png").exists()  # plotted every iteration
    with pytest.raises(SystemExit, match="--prior expects NAME=LOW:HIGH"):
        simopt_main([*args, "--out", str(tmp_path / "x"), "--prior", "dynamics.mass=1"])


# ------------------------------------------------------------------------ the drone problem


def test_simopt_recovers_hidden_drone_mass_and_drag(tmp_path):
    """Issue 7's fast test: scripted expert as the policy, no RL, broad prior, hidden truth.

    Mass 0.9 kg (nominal 0.8, bound 0.92) and body-x drag 0.55 N s/m (nominal 0.25) are
    hidden in a DroneRace stand-in reality; the prior is uniform over [0.68, 0.92] kg and
    [0.05, 0.65] N s/m (errors 11 % and 36 % at its mean).
    """
    from simenvs.agents.experts import make as expert
    from simenvs.envs.drone_race.env import DroneRaceEnv

    params = ["dynamics.quad.mass", "dynamics.quad.drag[0]"]
    truth = {"dynamics.quad.mass": 0.9, "dynamics.quad.drag[0]": 0.55}
    real = make_reality(
        "proxy:hidden", DroneRaceEnv, params=params, truth=truth,
        env_kwargs={"max_episode_steps": 100, "n_distractors": 0},
    )  # fmt: skip
    cfg = SimOptConfig(
        env_id="simenvs/DroneRace-v0", params=params, iterations=2, real_episodes=2,
        samples=12, updates=2, plot=False,
        prior={"dynamics.quad.mass": [0.68, 0.92], "dynamics.quad.drag[0]": [0.05, 0.65]},
        sim_env_kwargs={"randomization": "none", "n_distractors": 0},
    )  # fmt: skip
    so = SimOpt(cfg, tmp_path, reality=real, policy=expert, env=DroneRaceEnv, log=None)
    s = so.run()
    assert s["prior_rel_error"]["dynamics.quad.drag[0]"] > 0.3
    for n in params:  # issue 7's target (within 10 %), and at least half the prior's error gone
        err, err0 = s["rel_error"][n], s["prior_rel_error"][n]
        assert err < 0.10 and err < 0.5 * err0, (n, err0, err)
    assert so.history[-1]["discrepancy_after"] < 0.2 * so.history[0]["discrepancy_before"]
    # the recorded real episodes carry the scene layout but not the hidden dynamics
    ep = load_rollouts(tmp_path / "real" / "iter_000.npz").episodes[0]
    assert not any(k.startswith("dynamics.") for k in ep.params)
    assert any(k.startswith("layout.") for k in ep.params) and len(ep) == 100
    frag = so.spec_fragment()
    assert frag["joint"][0]["names"] == ["dynamics.quad.mass"]
    assert frag["dynamics.quad.drag"]["mean"][0] == pytest.approx(s["mean"][params[1]])
    env = DroneRaceEnv(randomization=frag, n_distractors=0)  # the adapted spec is valid
    _, info = env.reset(seed=0)
    assert info["params"]["dynamics.quad.drag"][1] == pytest.approx(0.25)
