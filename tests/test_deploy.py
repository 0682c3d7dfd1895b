"""simenvs.deploy on a 'robot computer': no torch/mujoco/gymnasium/SB3, strict input checks,
latency figures, and the hardware loop driving a stand-in reality like SB3 drives the sim."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from simenvs.agents.hardware_loop import SimulatedRobot, make_simulated_robot, run_control_loop
from simenvs.deploy import ExportFormatError, ObservationError, Policy
from simenvs.export import export_policy


class CamEnv(gym.Env):
    """A point mass seen by a 64x64 camera: thrust (N) lifts it, yaw rate (rad/s) turns it."""

    metadata = {"render_modes": []}
    control_hz = 50.0

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (3,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)
        self.received: list[np.ndarray] = []
        self.seen: list[dict] = []

    def state_layout(self):
        return [("height", 1, "m"), ("vz", 1, "m/s"), ("yaw", 1, "rad")]

    def action_layout(self):
        return [("thrust", "N", 0.0, 0.6), ("yaw_rate", "rad/s", -2.0, 2.0)]

    def _obs(self):
        image = self.np_random.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        obs = {"image": image, "state": self.state.astype(np.float32)}
        self.seen.append({k: v.copy() for k, v in obs.items()})
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self.np_random.normal(size=3)
        return self._obs(), {}

    def step(self, action):
        self.received.append(np.array(action))
        thrust = 0.3 + 0.3 * float(action[0])  # the env's own action_layout map
        dt = 1.0 / self.control_hz
        self.state[1] += (thrust / 0.03 - 9.81) * dt
        self.state[0] += self.state[1] * dt
        self.state[2] += 2.0 * float(action[1]) * dt
        return self._obs(), 0.0, False, False, {}


class Recorder(gym.Wrapper):
    """Records what the stand-in reality's env was given and showed."""

    def __init__(self, env):
        super().__init__(env)
        self.actions, self.observations = [], []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.observations.append(obs)
        return obs, info

    def step(self, action):
        self.actions.append(np.array(action))
        obs, *rest = self.env.step(action)
        self.observations.append(obs)
        return (obs, *rest)


def _normalizing(venv: VecNormalize) -> VecNormalize:
    rng = np.random.default_rng(2)
    stats = venv.obs_rms if isinstance(venv.obs_rms, dict) else {"obs": venv.obs_rms}
    for name, rms in stats.items():
        if name == "obs" or name in venv.norm_obs_keys:
            rms.mean = rng.normal(size=rms.mean.shape)
            rms.var = rng.uniform(0.2, 3.0, size=rms.var.shape)
    return venv


@pytest.fixture(scope="module")
def sac_export(tmp_path_factory):
    venv = _normalizing(VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), clip_obs=4.0))
    model = SAC("MlpPolicy", venv, buffer_size=100, seed=0, device="cpu")
    out = tmp_path_factory.mktemp("sac")
    export_policy(model, out, format="onnx", vecnormalize=venv)  # default (dynamo) exporter
    return model, venv, out


@pytest.fixture(scope="module")
def cnn_export(tmp_path_factory):
    base = VecNormalize(DummyVecEnv([CamEnv]), clip_obs=4.0, norm_obs_keys=["state"])
    venv = _normalizing(base)
    model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, seed=0, device="cpu")
    out = tmp_path_factory.mktemp("cnn")
    export_policy(model, out, format="onnx", vecnormalize=venv, dynamo=False)
    return model, venv, out


BLOCKED_RUN = r"""
import importlib.abc, json, sys
BLOCKED = {"torch", "mujoco", "gymnasium", "gym", "stable_baselines3", "onnx", "onnxscript",
           "scipy", "cv2", "pybullet"}

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed on this robot")
        return None

sys.meta_path.insert(0, Block())
try:
    import gymnasium  # noqa: F401
    sys.exit("the import blocker does not work")
except ImportError:
    pass

import numpy as np
from simenvs.deploy import Policy

policy = Policy.load(sys.argv[1])
data = np.load(sys.argv[2])
obs = {name: data[name] for name in data.files}
batch = policy(obs)
single = policy({name: value[0] for name, value in obs.items()})
print(json.dumps({
    "batch": batch.tolist(),
    "single": single.tolist(),
    "latency": policy.latency(samples=200),
    "loaded": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}))
"""


def test_runtime_works_without_the_simulation_stack(cnn_export, tmp_path):
    model, venv, out = cnn_export
    rng = np.random.default_rng(0)
    env_obs = {
        "image": rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8),
        "state": rng.normal(size=(8, 3)).astype(np.float32),
    }
    expected = model.predict(venv.normalize_obs(env_obs), deterministic=True)[0]
    expected = np.array([0.3, 0.0]) + np.array([0.3, 2.0]) * expected  # CamEnv.action_layout
    graph_obs = {"image": env_obs["image"].transpose(0, 3, 1, 2), "state": env_obs["state"]}
    np.savez(tmp_path / "obs.npz", **graph_obs)

    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, str(out), str(tmp_path / "obs.npz")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    np.testing.assert_allclose(result["batch"], expected, atol=1e-5)
    np.testing.assert_allclose(result["single"], expected[0], atol=1e-5)
    assert 0 < result["latency"]["p50_ms"] <= result["latency"]["p99_ms"]


def test_single_and_batched_calls(sac_export):
    model, venv, out = sac_export
    policy = Policy.load(out)
    obs = np.random.default_rng(1).uniform([-1, -1, -8], [1, 1, 8], size=(16, 3)).astype(np.float32)
    batch = policy(obs)
    assert batch.shape == (16, 1) and batch.dtype == np.float32
    singles = np.stack([policy(o) for o in obs])
    assert singles.shape == (16, 1)
    np.testing.assert_allclose(singles, batch, atol=1e-6)
    expected = model.predict(venv.normalize_obs(obs), deterministic=True)[0]
    np.testing.assert_allclose(batch, expected, atol=1e-5)
    # float64 and integer observations are cast; a mapping with the single input name works too
    np.testing.assert_allclose(policy(obs[0].astype(np.float64)), batch[0], atol=1e-6)
    np.testing.assert_allclose(policy({"obs": obs[0]}), batch[0], atol=1e-6)
    assert policy.action_names == ("action_0",) and policy.control_hz == pytest.approx(20.0)


def _cam_obs(**override):
    obs = {"image": np.zeros((3, 64, 64), np.uint8), "state": np.zeros(3, np.float32)}
    obs.update(override)
    return {k: v for k, v in obs.items() if v is not None}


@pytest.mark.parametrize(
    ("obs", "match"),
    [
        (_cam_obs(image=np.zeros((64, 64, 3), np.uint8)), r"'image' has shape \(64, 64, 3\).*HWC"),
        (_cam_obs(image=np.zeros((3, 64, 64), np.float32)), r"'image' must be uint8.*float32"),
        (_cam_obs(state=np.array([0.0, np.nan, 0.0])), r"'state' has non-finite.*vz = nan"),
        (_cam_obs(state=np.array([1e39, 0.0, 0.0])), r"non-finite.*after casting.*height = inf"),
        (_cam_obs(state=np.zeros(4)), r"'state' has shape \(4,\); expected \(3,\).*height\(1\) m"),
        (_cam_obs(state=np.array(["a", "b", "c"])), r"'state' must be numeric.*<U1"),
        (_cam_obs(state=None), r"missing \['state'\]"),
        ({**_cam_obs(), "depth": np.zeros(3)}, r"unexpected \['depth'\]"),
        (_cam_obs(state=np.zeros((2, 3))), r"mix single and batched.*state: batch of 2"),
        (np.zeros(3), r"takes a dict with keys \['image', 'state'\]"),
    ],
)
def test_bad_observations_are_refused_with_clear_errors(cnn_export, obs, match):
    policy = Policy.load(cnn_export[2])
    with pytest.raises(ObservationError, match=match):
        policy(obs)


def test_latency_figures(sac_export):
    policy = Policy.load(sac_export[2])
    with pytest.raises(RuntimeError, match="no calls timed yet"):
        policy.latency()
    for _ in range(30):
        policy(np.zeros(3, np.float32))
    running = policy.latency()
    assert running["n"] == 30 and 0 < running["p50_ms"] <= running["p99_ms"] <= running["max_ms"]
    bench = policy.latency(samples=300)
    assert bench["n"] == 300 and bench["p99_ms"] < 50
    assert policy.latency()["n"] == 30 and policy.calls == 30  # benchmark kept separate


def test_broken_exports_are_refused(sac_export, tmp_path):
    out = sac_export[2]
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "policy.json").read_text())
    meta["files"]["onnx"]["sha256"] = "0" * 64
    (copy / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ExportFormatError, match="does not match the sha256"):
        Policy.load(copy)
    meta["format_version"] = 99
    (copy / "policy.json").write_text(json.dumps(meta))
    with pytest.raises(ExportFormatError, match="format_version 99"):
        Policy.load(copy, verify_checksum=False)
    (copy / "policy.onnx").unlink()
    with pytest.raises(ExportFormatError, match="no policy.onnx"):
        Policy.load(copy)
    with pytest.raises(ExportFormatError, match="has no policy.json"):
        Policy.load(tmp_path)


def test_bare_onnx_file_carries_its_metadata(sac_export):
    out = sac_export[2]
    from_file = Policy.load(out / "policy.onnx")
    from_dir = Policy.load(out)
    assert from_file.metadata["action"] == from_dir.metadata["action"]
    assert from_file.env_id == "Pendulum-v1"
    obs = np.array([0.5, -0.5, 3.0], np.float32)
    np.testing.assert_array_equal(from_file(obs), from_dir(obs))


def test_hardware_loop_runs_at_the_control_rate_and_commands_like_sb3(sac_export):
    model, venv, out = sac_export
    policy = Policy.load(out)
    robot = make_simulated_robot(policy, seed=3)
    recorder = Recorder(robot.env)
    robot = SimulatedRobot(recorder, policy.metadata, seed=3)
    start_state = recorder.unwrapped.state.copy()

    report = run_control_loop(policy, robot, steps=20)  # Pendulum: 20 Hz, so ~1 s

    assert robot.stopped and robot.steps == 20 and len(recorder.actions) == 20
    assert report.target_hz == pytest.approx(20.0)
    assert report.achieved_hz == pytest.approx(20.0, rel=0.1)
    assert report.policy_p99_ms < 50
    assert not np.allclose(recorder.unwrapped.state, start_state)  # the pendulum moved
    # The command that reached the (stand-in) robot is what SB3 would have sent in simulation.
    seen = np.stack(recorder.observations[:20])  # reset observation, then one per step
    expected = model.predict(venv.normalize_obs(seen), deterministic=True)[0]
    np.testing.assert_allclose(np.stack(recorder.actions), expected, atol=1e-5)


def test_stand_in_converts_images_and_physical_commands(cnn_export):
    model, venv, out = cnn_export
    policy = Policy.load(out)
    env = CamEnv()
    robot = SimulatedRobot(env, policy.metadata, seed=0)
    assert isinstance(robot.read_observation()["image"], np.ndarray)
    assert robot.read_observation()["image"].shape == (3, 64, 64)

    report = run_control_loop(policy, robot, steps=15, realtime=False)

    assert report.steps == 15 and len(env.received) == 15
    seen = {k: np.stack([o[k] for o in env.seen[:15]]) for k in ("image", "state")}
    expected = model.predict(venv.normalize_obs(seen), deterministic=True)[0]
    np.testing.assert_allclose(np.stack(env.received), expected, atol=1e-5)
    assert env.state[0] != env.seen[0]["state"][0]  # thrust moved the mass


def test_loop_stops_the_robot_when_the_observation_is_bad(sac_export):
    policy = Policy.load(sac_export[2])

    class FaultySensor:
        stopped = sent = 0

        def read_observation(self):
            return np.array([1.0, 0.0, np.nan]) if self.sent == 3 else np.zeros(3)

        def send_command(self, command):
            self.sent += 1

        def stop(self):
            self.stopped += 1

    driver = FaultySensor()
    with pytest.raises(ObservationError, match="non-finite"):
        run_control_loop(policy, driver, steps=10, realtime=False)
    assert driver.sent == 3 and driver.stopped == 1
