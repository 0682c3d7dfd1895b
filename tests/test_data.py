"""Rollout files: recorder round trip, validating loader diagnostics, CSV import."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from simenvs.data import (
    ColumnMapping,
    Episode,
    RolloutFormatError,
    RolloutRecorder,
    Rollouts,
    import_csv,
    load_rollouts,
    save_rollouts,
    validate_file,
)
from simenvs.simopt.toy import PointMassEnv, PointMassPD


def _record(path, n=3, **kwargs):
    env = RolloutRecorder(PointMassEnv(max_episode_steps=20), path, source="test", **kwargs)
    pol = PointMassPD()
    seen = []
    for i in range(n):
        obs, info = env.reset(seed=100 + i)
        ep = [obs.copy()]
        done = False
        while not done:
            obs, _, term, trunc, info = env.step(pol.act(obs))
            ep.append(obs.copy())
            done = term or trunc
        seen.append(np.stack(ep))
    env.close()
    return seen


def _write(path, arrays):
    np.savez(path, **arrays)


def _arrays(path):
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    path = tmp_path_factory.mktemp("rec") / "roll.npz"
    seen = _record(path)
    return path, seen


def test_recorder_round_trip(recorded):
    path, seen = recorded
    r = load_rollouts(path)
    assert r.source == "test" and r.control_hz == 20.0
    assert r.obs_layout == [("pos", 2, "m"), ("vel", 2, "m/s"), ("goal", 2, "m")]
    assert r.action_layout[0] == ("force_x", "1", -1.0, 1.0)
    assert len(r.episodes) == 3
    for ep, obs in zip(r.episodes, seen):
        assert len(ep) == 20 and ep.obs.shape == (21, 6) and ep.actions.shape == (20, 2)
        np.testing.assert_allclose(ep.obs, obs, atol=1e-6)  # exactly what the policy saw
        np.testing.assert_allclose(np.diff(ep.time), 0.05)
        assert ep.truncated and not ep.terminated and ep.success in (True, False)
        assert ep.sim_state is not None and ep.sim_state.shape[0] == 21
        assert "dynamics.mass" in ep.params and "layout.goal" in ep.params
    assert [e.seed for e in r.episodes] == [100, 101, 102]
    # the puck moved toward its goal: physics ran
    ep = r.episodes[0]
    d0 = np.linalg.norm(ep.obs[0, :2] - ep.obs[0, 4:6])
    d1 = np.linalg.norm(ep.obs[-1, :2] - ep.obs[-1, 4:6])
    assert d1 < 0.5 * d0
    # per-field keys on disk
    keys = _arrays(path)
    assert {"obs/pos", "obs/vel", "obs/goal", "actions", "time", "episode_lengths"} <= set(keys)
    assert keys["episode_lengths"].tolist() == [20, 20, 20]


def test_recorder_flushes_each_episode_and_filters_params(tmp_path):
    path = tmp_path / "r.npz"
    env = RolloutRecorder(PointMassEnv(max_episode_steps=5), path, params_prefixes=("layout.",))
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, *_ = env.step(np.zeros(2))
    assert path.exists(), "a finished episode must be on disk before close()"
    r = load_rollouts(path)
    assert len(r.episodes) == 1 and set(r.episodes[0].params) == {"layout.goal"}
    env.reset(seed=1)  # an unfinished episode with no step is dropped on close
    env.close()
    assert len(load_rollouts(path).episodes) == 1


def test_loader_reports_every_problem_precisely(recorded, tmp_path):
    path, _ = recorded
    good = _arrays(path)

    def problems(mutate):
        a = {k: v.copy() for k, v in good.items()}
        mutate(a)
        p = tmp_path / "bad.npz"
        _write(p, a)
        with pytest.raises(RolloutFormatError) as exc:
            load_rollouts(p)
        assert exc.value.problems == validate_file(p)
        return str(exc.value)

    msg = problems(lambda a: a.pop("actions"))
    assert "missing key 'actions'" in msg

    def nan(a):
        a["obs/vel"][25, 1] = np.nan

    msg = problems(nan)
    assert "episode 1" in msg and "step 4" in msg and "vel[1]" in msg and "non-finite" in msg

    msg = problems(lambda a: a.__setitem__("obs/pos", a["obs/pos"].astype(np.int32)))
    assert "'obs/pos'" in msg and "float dtype" in msg and "int32" in msg

    msg = problems(lambda a: a.__setitem__("obs/goal", a["obs/goal"][:, :1]))
    assert "'obs/goal'" in msg and "(N, 2)" in msg

    msg = problems(lambda a: a.__setitem__("episode_lengths", np.array([20, 20, 19])))
    assert "rows, expected 62" in msg and "rows, expected 59" in msg  # obs and actions both

    def bad_time(a):
        a["time"][3] = a["time"][2]

    msg = problems(bad_time)
    assert "episode 0" in msg and "increase strictly" in msg

    def bad_meta(a):
        meta = json.loads(str(a["metadata"]))
        meta["control_hz"] = -1
        del meta["source"]
        a["metadata"] = np.array(json.dumps(meta))

    msg = problems(bad_meta)
    assert "control_hz must be a positive" in msg and "missing key 'source'" in msg
    assert "2 problems" in msg

    def dt_mismatch(a):
        meta = json.loads(str(a["metadata"]))
        meta["control_hz"] = 100.0
        a["metadata"] = np.array(json.dumps(meta))

    msg = problems(dt_mismatch)
    assert "median time step 0.05 s disagrees with control_hz 100" in msg

    msg = problems(lambda a: a.__setitem__("extra_key", np.zeros(3)))
    assert "unknown keys ['extra_key']" in msg

    msg = problems(lambda a: a.__setitem__("format", np.array("something.else")))
    assert "expected 'simenvs.rollouts'" in msg


def test_loader_refuses_pickles_and_non_npz(recorded, tmp_path):
    path, _ = recorded
    a = _arrays(path)
    a["actions"] = np.array([{"a": 1}], dtype=object)
    p = tmp_path / "pickled.npz"
    np.savez(p, **a)
    msg = str(pytest.raises(RolloutFormatError, load_rollouts, p).value)
    assert "'actions'" in msg and "pickles are refused" in msg
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    assert "not a readable npz" in str(pytest.raises(RolloutFormatError, load_rollouts, junk).value)
    assert zipfile.is_zipfile(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_rollouts(tmp_path / "missing.npz")


def test_save_refuses_inconsistent_rollouts(tmp_path):
    ep = Episode(obs=np.zeros((4, 2)), actions=np.zeros((4, 1)), time=np.arange(4) * 0.1)
    r = Rollouts([ep], [("x", 2, "m")], control_hz=10.0)
    with pytest.raises(RolloutFormatError, match=r"obs has 4 rows, expected 5"):
        save_rollouts(r, tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


CSV = """t,episode,x_mm,y_mm,vx,vy,u1,u2,ok
0.00,a,0,0,0,0,0.5,0.1,0
0.05,a,10,0,0.2,0,0.5,0.1,0
0.10,a,30,5,0.4,0.1,0.4,0.0,1
0.00,b,100,100,0,0,-0.5,0,0
0.05,b,90,100,-0.2,0,-0.5,0,0
"""


def test_csv_import_with_mapping(tmp_path):
    csv_path = tmp_path / "log.csv"
    csv_path.write_text(CSV)
    mapping = {
        "obs": {"pos": ["x_mm", "y_mm"], "vel": ["vx", "vy"]},
        "actions": ["u1", "u2"],
        "time": "t",
        "episode": "episode",
        "units": {"pos": "m", "vel": "m/s"},
        "scale": {"pos": 0.001},
        "success": "ok",
    }
    r = import_csv(csv_path, mapping, env_id="simenvs/Test-v0")
    assert r.control_hz == pytest.approx(20.0)
    assert [len(e) for e in r.episodes] == [2, 1]
    a, b = r.episodes
    np.testing.assert_allclose(a.obs[2], [0.030, 0.005, 0.4, 0.1])
    np.testing.assert_allclose(a.actions, [[0.5, 0.1], [0.5, 0.1]])
    np.testing.assert_allclose(b.time, [0.0, 0.05])  # per-episode clock
    assert a.success is True and b.success is False
    assert r.obs_layout == [("pos", 2, "m"), ("vel", 2, "m/s")]
    out = save_rollouts(r, tmp_path / "log.npz")
    back = load_rollouts(out)
    np.testing.assert_allclose(back.episodes[0].obs, a.obs)
    assert back.source == "csv:log.csv" and back.env_id == "simenvs/Test-v0"

    # the same mapping loaded from a JSON file, episodes split by time going backwards
    m2 = dict(mapping)
    m2.pop("episode")
    (tmp_path / "map.json").write_text(json.dumps(m2))
    r2 = import_csv(csv_path, ColumnMapping.load(tmp_path / "map.json"))
    assert [len(e) for e in r2.episodes] == [2, 1]
    np.testing.assert_allclose(r2.episodes[1].obs[0], b.obs[0])


def test_csv_import_errors_name_row_and_column(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text(CSV.replace("0.4,0.1,0.4", "0.4,oops,0.4"))
    m = {
        "obs": {"pos": ["x_mm", "y_mm"], "vel": ["vx", "vy"]},
        "actions": ["u1", "u2"],
        "time": "t",
    }
    with pytest.raises(ValueError, match=r"row 4, column 'vy': cannot read 'oops'"):
        import_csv(p, m)
    p.write_text(CSV)
    with pytest.raises(ValueError, match=r"columns \['z'\] not in the CSV header"):
        import_csv(p, {**m, "obs": {"pos": ["x_mm", "z"]}})
    with pytest.raises(ValueError, match="without a time column, pass control_hz"):
        import_csv(p, {**m, "time": None})
    with pytest.raises(ValueError, match="unknown column-mapping keys"):
        import_csv(p, {**m, "colums": 1})
    p.write_text(CSV + "0.10,a,1,1,0,0,0,0,0\n")
    with pytest.raises(ValueError, match="episode 'a' appears in two separate blocks"):
        import_csv(p, {**m, "episode": "episode"})
