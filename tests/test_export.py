"""Export parity: ONNX and TorchScript equal SB3 predict(deterministic=True) after VecNormalize
and the env's action map, on 1,000 observations, for PPO/SAC/TD3 MLP and a PPO-CNN Dict policy.

Untrained networks with their action heads scaled up, so outputs reach the action bounds and
the baked-in clip/squash is exercised; VecNormalize statistics are random and clip_obs small, so
normalization and its clipping are exercised too.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import warnings

import gymnasium as gym
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from simenvs.deploy.format import METADATA_KEYS, TORCHSCRIPT_METADATA
from simenvs.export import ExportVerificationError, export_policy, load_vecnormalize
from simenvs.export import verify as export_verify
from simenvs.export.cli import main as cli_main

N_OBS = 1000
TOL = 1e-5
CLIP_OBS = 3.0


class CamEnv(gym.Env):
    """64x64 RGB camera + 5-d state; normalized actions mapped to thrust (N) and yaw rate."""

    metadata = {"render_modes": []}
    control_hz = 25.0

    def __init__(self):
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (64, 64, 3), np.uint8),
                "state": spaces.Box(-np.inf, np.inf, (5,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1, 1, (2,), np.float32)

    def state_layout(self):
        return [("pos", 3, "m"), ("yaw", 1, "rad"), ("speed", 1, "m/s")]

    def action_layout(self):
        return [("thrust", "N", 0.0, 0.6), ("yaw_rate", "rad/s", -2.0, 2.0)]

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, False, False, {}


def _vecnormalize(env_fn, keys=None) -> VecNormalize:
    venv = VecNormalize(DummyVecEnv([env_fn]), clip_obs=CLIP_OBS, norm_obs_keys=keys)
    rng = np.random.default_rng(1)
    stats = venv.obs_rms if isinstance(venv.obs_rms, dict) else {"obs": venv.obs_rms}
    for name, rms in stats.items():
        if keys is None or name in keys:
            rms.mean = rng.normal(size=rms.mean.shape)
            rms.var = rng.uniform(0.1, 4.0, size=rms.var.shape)
    return venv


def _amplify(model, venv) -> None:
    """Scale the action head of an untrained policy: PPO's outputs get a std of 0.8x the bound
    (~20 % of actions clipped), SAC/TD3's pre-tanh outputs a std of 0.75."""
    policy = model.policy
    if isinstance(model, PPO):
        head, target = policy.action_net, 0.8 * float(np.max(model.action_space.high))
    elif isinstance(model, SAC):
        head, target = policy.actor.mu, 0.75
    else:
        head, target = policy.actor.mu[-2], 0.75  # Linear before the Tanh
    outputs = []
    hook = head.register_forward_hook(lambda module, args, out: outputs.append(out))
    obs = _env_observations(venv.observation_space, 256, np.random.default_rng(7))
    model.predict(venv.normalize_obs(obs), deterministic=True)
    hook.remove()
    with torch.no_grad():
        head.weight.mul_(target / float(outputs[0].std()))


def _build(kind: str):
    if kind == "ppo_cnn":
        venv = _vecnormalize(CamEnv, keys=["state"])
        model = PPO("MultiInputPolicy", venv, n_steps=16, batch_size=16, seed=0, device="cpu")
    else:
        venv = _vecnormalize(lambda: gym.make("Pendulum-v1"))
        if kind == "ppo_mlp":
            model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, seed=0, device="cpu")
        elif kind == "sac_mlp":
            model = SAC("MlpPolicy", venv, buffer_size=100, seed=0, device="cpu")
        else:
            model = TD3("MlpPolicy", venv, buffer_size=100, seed=0, device="cpu")
    _amplify(model, venv)
    return model, venv


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """kind -> (model, vecnormalize, out_dir, ExportResult); built once per module."""
    cache = {}

    def get(kind: str):
        if kind not in cache:
            model, venv = _build(kind)
            out = tmp_path_factory.mktemp(kind)
            result = export_policy(
                model, out, format="both", vecnormalize=venv, dynamo=kind != "td3_mlp"
            )
            cache[kind] = (model, venv, out, result)
        return cache[kind]

    return get


def _env_observations(space: spaces.Space, n: int, rng: np.random.Generator):
    """n observations as the env emits them (HWC images), spread beyond the normalization clip."""

    def one(sub):
        if sub.dtype == np.uint8:
            return rng.integers(0, 256, size=(n, *sub.shape), dtype=np.uint8)
        low = np.where(np.isfinite(sub.low), sub.low, -8.0)
        high = np.where(np.isfinite(sub.high), sub.high, 8.0)
        return rng.uniform(low, high, size=(n, *sub.shape)).astype(np.float32)

    if isinstance(space, spaces.Dict):
        return {k: one(s) for k, s in space.spaces.items()}
    return one(space)


def _physical(action: np.ndarray, env) -> np.ndarray:
    """The env's own meaning of an action: its action_layout map, or the raw Box value."""
    layout = getattr(env, "action_layout", None)
    action = action.astype(np.float64)
    if layout is None:
        return action
    lo = np.array([e[2] for e in layout()])
    hi = np.array([e[3] for e in layout()])
    return lo + (action + 1.0) / 2.0 * (hi - lo)


def _graph_inputs(obs, names):
    """Env layout -> the exported graph's layout (CHW images), in input order."""
    if not isinstance(obs, dict):
        return [obs]
    return [obs[n].transpose(0, 3, 1, 2) if obs[n].ndim == 4 else obs[n] for n in names]


def _exported_actions(out, obs):
    """(onnx, torchscript) actions of an export for env-layout observations."""
    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    inputs = _graph_inputs(obs, names)
    onnx_action = session.run(["action"], dict(zip(names, inputs)))[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(out / "policy.pt"))
    with torch.no_grad():
        ts_action = module(*[torch.as_tensor(np.ascontiguousarray(a)) for a in inputs]).numpy()
    assert onnx_action.dtype == np.float32 and ts_action.dtype == np.float32
    return onnx_action, ts_action


# td3_mlp goes through torch's legacy ONNX exporter (--legacy-onnx), the others through dynamo.
@pytest.mark.parametrize("kind", ["ppo_mlp", "sac_mlp", "ppo_cnn", "td3_mlp"])
def test_onnx_and_torchscript_match_sb3_predict(exported, kind):
    model, venv, out, result = exported(kind)
    env = venv.venv.envs[0].unwrapped
    obs = _env_observations(venv.observation_space, N_OBS, np.random.default_rng(123))
    normalized = venv.normalize_obs(obs)
    sb3_action, _ = model.predict(normalized, deterministic=True)
    reference = _physical(sb3_action, env)

    onnx_action, ts_action = _exported_actions(out, obs)
    assert onnx_action.shape == reference.shape == ts_action.shape
    onnx_err = np.abs(onnx_action - reference).max()
    ts_err = np.abs(ts_action - reference).max()
    print(f"{kind}: max |onnx - sb3| = {onnx_err:.2e}, max |torchscript - sb3| = {ts_err:.2e}")
    assert onnx_err < TOL and ts_err < TOL
    assert result.max_abs_error["onnx"] < TOL and result.max_abs_error["torchscript"] < TOL

    # The comparison exercised what it claims to: PPO's clip to the bounds, SAC/TD3's unscale
    # from [-1, 1] to Pendulum's [-2, 2], the layout map, and clipped normalization.
    low = np.array(result.metadata["action"]["low"])
    high = np.array(result.metadata["action"]["high"])
    if kind.startswith("ppo"):
        at_bounds = np.isclose(reference, low) | np.isclose(reference, high)
        assert 0.1 < at_bounds.mean() < 0.9
    else:
        assert np.abs(reference).max() > 1.2
    state = normalized["state"] if isinstance(normalized, dict) else normalized
    assert (np.abs(state) == CLIP_OBS).any() and (np.abs(state) < CLIP_OBS).any()
    # Without the baked-in normalization the answer would differ.
    raw_action, _ = model.predict(obs, deterministic=True)
    assert np.abs(_physical(raw_action, env) - reference).max() > 1e-2


@pytest.mark.parametrize("algo", [PPO, SAC])
def test_gsde_policies_export_after_sampling(algo, tmp_path):
    """gSDE keeps sampled noise tensors in the policy; export must copy around them."""
    venv = _vecnormalize(lambda: gym.make("Pendulum-v1"))
    if algo is PPO:
        kwargs = {"n_steps": 16, "batch_size": 16, "policy_kwargs": {"squash_output": True}}
    else:
        kwargs = {"buffer_size": 100, "learning_starts": 0, "batch_size": 8}
    model = algo("MlpPolicy", venv, use_sde=True, seed=0, device="cpu", **kwargs)
    model.learn(16)
    export_policy(model, tmp_path, format="both", vecnormalize=venv, dynamo=False)
    obs = _env_observations(venv.observation_space, N_OBS, np.random.default_rng(4))
    reference, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
    for action in _exported_actions(tmp_path, obs):
        assert np.abs(action - reference).max() < TOL


def test_metadata_sidecar_mirrors_onnx_props_and_describes_cnn_policy(exported):
    _, _, out, result = exported("ppo_cnn")
    meta = json.loads((out / "policy.json").read_text())
    props = {p.key: json.loads(p.value) for p in onnx.load(str(out / "policy.onnx")).metadata_props}
    assert set(props) == set(METADATA_KEYS)
    assert all(props[k] == meta[k] for k in METADATA_KEYS)
    extra = {TORCHSCRIPT_METADATA: ""}
    torch.jit.load(str(out / "policy.pt"), _extra_files=extra)
    assert json.loads(extra[TORCHSCRIPT_METADATA]) == props

    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    graph_inputs = [(i.name, i.shape[1:], i.type) for i in session.get_inputs()]
    assert graph_inputs == [
        ("image", [3, 64, 64], "tensor(uint8)"),
        ("state", [5], "tensor(float)"),
    ]
    image, state = meta["inputs"]
    assert (image["name"], image["layout"], image["env_layout"], image["dtype"]) == (
        "image",
        "CHW",
        "HWC",
        "uint8",
    )
    assert [(f["name"], f["size"], f["unit"]) for f in state["fields"]] == [
        ("pos", 3, "m"),
        ("yaw", 1, "rad"),
        ("speed", 1, "m/s"),
    ]
    assert state["normalized_in_graph"] and not image["normalized_in_graph"]
    assert meta["images"]["image"] == {
        "height": 64,
        "width": 64,
        "channels": 3,
        "channel_order": "CHW",
        "env_channel_order": "HWC",
        "color": "RGB",
        "dtype": "uint8",
        "value_range": [0, 255],
        "divided_by_255_in_graph": True,
    }
    action = meta["action"]
    assert action["names"] == ["thrust", "yaw_rate"] and action["units"] == ["N", "rad/s"]
    assert action["low"] == [0.0, -2.0] and action["high"] == [0.6, 2.0]
    assert meta["control_hz"] == 25.0
    assert meta["normalization"]["clip_obs"] == CLIP_OBS
    assert meta["normalization"]["inputs"] == ["state"]
    assert meta["source"]["algo"] == "PPO" and len(meta["source"]["params_sha256"]) == 64
    for fmt, entry in meta["files"].items():
        digest = hashlib.sha256((out / entry["path"]).read_bytes()).hexdigest()
        assert digest == entry["sha256"], fmt


def test_generic_env_falls_back_to_box_bounds_and_dt(exported):
    _, _, out, _ = exported("sac_mlp")
    meta = json.loads((out / "policy.json").read_text())
    assert meta["env_id"] == "Pendulum-v1"
    assert meta["control_hz"] == pytest.approx(20.0)  # Pendulum's dt = 0.05 s
    assert meta["source"]["control_hz_source"] == "env.dt"
    action = meta["action"]
    assert action["names"] == ["action_0"] and action["layout_source"] == "box_bounds"
    assert action["low"] == [-2.0] and action["high"] == [2.0]
    assert action["postprocess"] == "squash_unscale"
    assert meta["inputs"][0]["name"] == "obs" and meta["inputs"][0]["shape"] == [3]


def test_simenvs_env_layouts_reach_the_metadata(tmp_path):
    import simenvs  # noqa: F401  (registers the ids)

    venv = _vecnormalize(lambda: gym.make("simenvs/DroneRace-v0"))
    model = PPO("MlpPolicy", venv, n_steps=16, batch_size=16, device="cpu")
    _amplify(model, venv)
    result = export_policy(model, tmp_path, format="onnx", dynamo=False)
    meta, env = result.metadata, venv.venv.envs[0]
    base = env.unwrapped

    fields = meta["inputs"][0]["fields"]
    assert [(f["name"], f["size"], f["unit"]) for f in fields] == base.state_layout()
    layout = base.action_layout()
    assert meta["action"]["names"] == [e[0] for e in layout]
    assert meta["action"]["units"] == [e[1] for e in layout]
    assert meta["control_hz"] == base.control_hz and meta["env_id"] == "simenvs/DroneRace-v0"
    assert meta["randomization"]["env_summary"] == json.loads(
        json.dumps(base.randomization_summary())
    )
    obs = _env_observations(env.observation_space, 200, np.random.default_rng(9))
    session = ort.InferenceSession(
        str(tmp_path / "policy.onnx"), providers=["CPUExecutionProvider"]
    )
    reference = _physical(model.predict(venv.normalize_obs(obs), deterministic=True)[0], base)
    err = np.abs(session.run(["action"], {"obs": obs})[0] - reference).max()
    print(f"DroneRace: max |onnx - sb3| = {err:.2e} N or rad/s")
    assert err < TOL * np.abs(reference).max()  # 1e-5 relative to the largest command


def test_run_directory_export_through_cli(exported, tmp_path):
    model, venv, out, _ = exported("sac_mlp")
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.zip")
    venv.save(str(run / "vecnormalize.pkl"))
    config = {"env_id": "Pendulum-v1", "env_kwargs": {"g": 9.81}, "algo": "sac", "seed": 3}
    (run / "config.json").write_text(json.dumps(config))

    args = [str(run), "--format", "onnx", "--out", str(tmp_path / "exp"), "--legacy-onnx"]
    assert cli_main(args) == 0
    meta = json.loads((tmp_path / "exp" / "policy.json").read_text())
    assert (
        meta["source"]["model_sha256"]
        == hashlib.sha256((run / "model.zip").read_bytes()).hexdigest()
    )
    assert meta["source"]["config"]["seed"] == 3 and meta["env_kwargs"] == {"g": 9.81}
    assert meta["normalization"]["applied_in_graph"]
    assert not (tmp_path / "exp" / "policy.pt").exists()

    obs = _env_observations(venv.observation_space, 200, np.random.default_rng(5))
    outputs = []
    for path in (out / "policy.onnx", tmp_path / "exp" / "policy.onnx"):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs.append(session.run(["action"], {"obs": obs})[0])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)


def test_failed_verification_raises_and_writes_no_sidecar(tmp_path, monkeypatch):
    model, venv = _build("ppo_mlp")
    original = export_verify.reference_actions
    monkeypatch.setattr(
        export_verify, "reference_actions", lambda *a, **k: original(*a, **k) + 1e-3
    )
    with pytest.raises(ExportVerificationError, match="differs from SB3"):
        export_policy(model, tmp_path, vecnormalize=venv, dynamo=False, verify_samples=64)
    assert not (tmp_path / "policy.json").exists()


def test_vecnormalize_pickle_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "vecnormalize.pkl"
    path.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_vecnormalize(path)
    assert not marker.exists()


def test_bad_requests_fail_with_clear_errors(tmp_path):
    model, venv = _build("ppo_mlp")
    with pytest.raises(ValueError, match="format must be one of"):
        export_policy(model, tmp_path, format="tflite")
    with pytest.raises(FileNotFoundError, match="config.json"):
        model.save(tmp_path / "model.zip")
        export_policy(tmp_path, tmp_path / "out")
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "Pendulum-v1"}))
    with pytest.raises(ValueError, match="algo"):
        export_policy(tmp_path, tmp_path / "out")
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "Pendulum-v1", "algo": "dqn"}))
    with pytest.raises(ValueError, match="unknown algo 'dqn'"):
        export_policy(tmp_path, tmp_path / "out")
    discrete = PPO("MlpPolicy", "CartPole-v1", n_steps=16, batch_size=16, device="cpu")
    with pytest.raises(TypeError, match="only 1-D Box action spaces"):
        export_policy(discrete, tmp_path / "out")
