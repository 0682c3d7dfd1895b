"""The randomization engine on its own: distributions, specs, streams, textures, sensor noise."""

import os

import numpy as np
import pytest

from simenvs.randomization import (
    Categorical,
    LogUniform,
    MultivariateNormal,
    ParamDef,
    RandomizationSpec,
    Streams,
    TruncatedNormal,
    Uniform,
    distribution_from_dict,
)
from simenvs.randomization.sensor import apply_image_noise
from simenvs.randomization.streams import STREAMS as STREAMS_ALL
from simenvs.randomization.textures import PATTERNS, make_texture

REG = [
    ParamDef("dynamics.mass", 1.0, 0.1, 10.0, unit="kg"),
    ParamDef("dynamics.friction", 1.0, 0.1, 3.0),
    ParamDef("dynamics.wind", np.zeros(3), -5.0, 5.0, shape=(3,), unit="m/s"),
    ParamDef("appearance.pattern", "flat", choices=("flat", "checker")),
    ParamDef("sensor.noise", 0.0, 0.0, 1.0),
    ParamDef("layout.n", 1, 1, 5, dtype=int),
]


@pytest.mark.parametrize(
    "d,kind",
    [
        (0.5, "constant"),
        ([0.1, 0.2], "uniform"),
        ({"dist": "log_uniform", "low": 0.1, "high": 10}, "log_uniform"),
        ({"dist": "normal", "mean": 1, "std": 0.1}, "normal"),
        (
            {"dist": "truncated_normal", "mean": 1, "std": 1, "low": 0.5, "high": 2},
            "truncated_normal",
        ),
        ({"choices": ["a", "b"], "probs": [0.3, 0.7]}, "categorical"),
    ],
)
def test_distribution_round_trip(d, kind):
    dist = distribution_from_dict(d)
    assert dist.kind == kind
    again = distribution_from_dict(dist.to_dict())
    rng1, rng2 = np.random.default_rng(0), np.random.default_rng(0)
    assert again.sample(rng1) == dist.sample(rng2)


def test_samples_stay_in_support():
    rng = np.random.default_rng(1)
    for dist in [Uniform(1, 2), LogUniform(0.01, 100), TruncatedNormal(0, 5, -1, 1)]:
        lo, hi = dist.support()
        xs = np.array([dist.sample(rng) for _ in range(500)])
        assert xs.min() >= lo and xs.max() <= hi
    xs = np.array([LogUniform(0.01, 100).sample(rng) for _ in range(2000)])
    assert 0.35 < np.mean(np.log10(xs) < 0) < 0.65  # log-uniform: half below 1


@pytest.mark.parametrize(
    "bad,needle",
    [
        ({"dist": "uniform", "low": 2, "high": 1}, "low <= high"),
        ({"dist": "log_uniform", "low": 0, "high": 1}, "0 < low"),
        ({"dist": "normal", "mean": 0, "std": -1}, "std >= 0"),
        ({"dist": "gamma", "k": 1}, "unknown distribution 'gamma'"),
        ({"dist": "uniform", "low": 0}, "missing ['high']"),
        ({"choices": ["a"], "probs": [0.5]}, "summing to 1"),
        ({"dist": "uniform", "low": float("nan"), "high": 1}, "finite"),
    ],
)
def test_invalid_distributions_name_the_problem(bad, needle):
    with pytest.raises(ValueError, match=None) as e:
        distribution_from_dict(bad, where="dynamics.mass")
    assert needle in str(e.value)


def test_spec_validation_against_registry():
    with pytest.raises(
        ValueError, match="unknown randomization parameter 'dynamics.mas'.*did you mean"
    ):
        RandomizationSpec.from_dict({"dynamics.mas": [0.5, 2]}).bind(REG)
    with pytest.raises(ValueError, match=r"outside the allowed range \[0.1, 10.0\] kg"):
        RandomizationSpec.from_dict({"dynamics.mass": [0.01, 2]}).bind(REG)
    with pytest.raises(ValueError, match="not allowed; choices"):
        RandomizationSpec.from_dict({"appearance.pattern": {"choices": ["plaid"]}}).bind(REG)
    with pytest.raises(ValueError, match="unknown randomization parameter 'sensor.nothing.*'"):
        RandomizationSpec.from_dict({"sensor.nothing.*": [0, 1]}).bind(REG)


def test_patterns_and_exact_names():
    spec = RandomizationSpec.from_dict({"dynamics.*": [1.0, 2.0], "dynamics.mass": 3.0})
    bound = spec.bind([p for p in REG if p.shape == ()])
    vals = bound.sample(Streams(0))
    assert vals["dynamics.mass"] == 3.0
    assert 1.0 <= vals["dynamics.friction"] <= 2.0


def test_streams_are_independent():
    spec = RandomizationSpec.from_dict(
        {
            "dynamics.mass": [0.5, 2.0],
            "dynamics.friction": [0.5, 2.0],
            "sensor.noise": [0, 1],
            "layout.n": [1, 5],
        }
    )
    bound = spec.bind(REG)
    a = bound.sample(Streams(0))
    b = bound.sample(Streams(0, seeds={"layout": 123}))  # fixing layout shifts nothing else
    assert a["dynamics.mass"] == b["dynamics.mass"] and a["sensor.noise"] == b["sensor.noise"]
    c = bound.sample(Streams(0), overrides={"dynamics.mass": 7.0})  # overriding shifts nothing
    assert c["dynamics.mass"] == 7.0 and c["dynamics.friction"] == a["dynamics.friction"]
    d = bound.sample(Streams(1))
    assert d["dynamics.mass"] != a["dynamics.mass"]
    with pytest.raises(ValueError, match="unknown stream"):
        Streams(0, seeds={"weather": 1})


def test_overrides_are_validated():
    bound = RandomizationSpec().bind(REG)
    with pytest.raises(
        ValueError, match=r"dynamics.mass=50.0 is outside its bounds \[0.1, 10.0\] kg"
    ):
        bound.sample(Streams(0), {"dynamics.mass": 50.0})
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        bound.sample(Streams(0), {"dynamics.wind": [1, 2]})
    with pytest.raises(ValueError, match="unknown randomization parameter"):
        bound.sample(Streams(0), {"dynamics.gravity": 1.0})


def test_joint_gaussian_and_clipping():
    spec = RandomizationSpec(
        joint=(
            MultivariateNormal(
                ("dynamics.mass", "dynamics.friction"), [1.0, 1.0], [[100, 0], [0, 0.01]]
            ),
        )
    )
    bound = spec.bind(REG)
    streams = Streams(3)
    masses = np.array([bound.sample(streams)["dynamics.mass"] for _ in range(300)])
    assert masses.min() >= 0.1 and masses.max() <= 10.0  # clipped to physical bounds
    assert np.mean(masses == 10.0) > 0.1


def test_yaml_round_trip(tmp_path):
    spec = RandomizationSpec.from_dict(
        {
            "dynamics.mass": {"dist": "log_uniform", "low": 0.5, "high": 2},
            "joint": [{"names": ["dynamics.friction"], "mean": [1.0], "cov": [[0.01]]}],
        }
    )
    spec.to_yaml(tmp_path / "s.yaml")
    again = RandomizationSpec.from_yaml(tmp_path / "s.yaml")
    assert again.to_dict() == spec.to_dict()
    (tmp_path / "bad.yaml").write_text("dynamics.mass: {dist: uniform, low: 3, high: 1}\n")
    with pytest.raises(ValueError, match="bad.yaml.*low <= high"):
        RandomizationSpec.from_yaml(tmp_path / "bad.yaml")


def test_textures_differ_and_are_deterministic():
    imgs = [make_texture(p, (0.9, 0.1, 0.1), (0.1, 0.1, 0.9), 6, 3) for p in PATTERNS]
    for i in range(len(imgs)):
        for j in range(i + 1, len(imgs)):
            assert not np.array_equal(imgs[i], imgs[j]), (PATTERNS[i], PATTERNS[j])
    assert np.array_equal(
        make_texture("noise", (1, 1, 1), (0, 0, 0), 4, 7),
        make_texture("noise", (1, 1, 1), (0, 0, 0), 4, 7),
    )
    assert not np.array_equal(
        make_texture("noise", (1, 1, 1), (0, 0, 0), 4, 7),
        make_texture("noise", (1, 1, 1), (0, 0, 0), 4, 8),
    )


@pytest.mark.parametrize(
    "param,value",
    [
        ("gaussian_std", 10.0),
        ("shot_noise", 0.5),
        ("blur_sigma", 1.5),
        ("motion_blur", 7.0),
        ("brightness", 0.2),
        ("contrast", 1.5),
        ("gamma", 1.5),
        ("hue", 30.0),
        ("saturation", 0.3),
        ("jpeg_quality", 10.0),
        ("distortion_k1", 0.3),
    ],
)
def test_each_sensor_effect_changes_the_image(param, value):
    img = make_texture("checker", (0.8, 0.3, 0.2), (0.1, 0.5, 0.7), 8, 0)
    out = apply_image_noise(img, {f"sensor.image.{param}": value}, np.random.default_rng(0))
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - img).mean() > 0.5
    assert np.array_equal(apply_image_noise(img, {}, np.random.default_rng(0)), img)


def test_categorical_numeric_validation():
    with pytest.raises(ValueError, match="categorical"):
        RandomizationSpec.from_dict({"appearance.pattern": [0.0, 1.0]}).bind(REG)
    assert Categorical(("a",)).sample(np.random.default_rng(0)) == "a"


PLAN_REG = [
    *REG,
    ParamDef("dynamics.gains", np.ones(2), 0.5, 4.0, shape=(2,)),
    ParamDef("dynamics.counts", np.ones(3), 0, 9, shape=(3,), dtype=int),
    ParamDef("dynamics.flag", 0.0, 0.0, 1.0, dtype=bool),
    ParamDef("dynamics.level", 2.0, 1.0, 3.0),
    ParamDef("dynamics.offset", np.zeros(2), -1.0, 1.0, shape=(2,)),
    ParamDef("appearance.tint", np.ones(3), 0.0, 1.0, shape=(3,)),
]
PLAN_SPEC = {
    "dynamics.mass": {"dist": "log_uniform", "low": 0.2, "high": 5.0},
    "dynamics.friction": {"dist": "normal", "mean": 1.0, "std": 2.0},  # clipped
    "dynamics.wind": {"dist": "uniform", "low": [-1, -2, 0], "high": [1, 2, 0.5]},
    "dynamics.gains": {"dist": "log_uniform", "low": [0.5, 1.0], "high": [2.0, 4.0]},
    "dynamics.counts": [0.0, 9.0],
    "dynamics.flag": [0.0, 1.0],
    "dynamics.level": {"choices": [1.0, 2.5, 3.0], "probs": [0.2, 0.5, 0.3]},
    "dynamics.offset": {"dist": "constant", "value": [0.25, -0.5]},
    "appearance.pattern": {"choices": ["flat", "checker"]},
    "sensor.noise": {"dist": "truncated_normal", "mean": 0.1, "std": 0.2, "low": 0, "high": 1},
    "layout.n": [1.0, 5.0],
}


def _reference_sample(reg, dists, streams):
    """The unplanned sampler: per group one uniform draw in registry order for uniform,
    log-uniform and categorical params, then the other distributions, each value coerced."""
    out = {p.name: p.nominal if p.is_categorical else p.coerce(p.nominal) for p in reg}
    blocky = (Uniform, LogUniform, Categorical)
    for group in dict.fromkeys(p.group for p in reg if p.name in dists):
        rng = streams[group]
        ps = [p for p in reg if p.group == group and isinstance(dists.get(p.name), blocky)]
        sizes = [
            1 if isinstance(dists[p.name], Categorical) else int(np.prod(p.shape or (1,)))
            for p in ps
        ]
        u, k = rng.random(sum(sizes)), 0
        for p, n in zip(ps, sizes):
            d, uu = dists[p.name], u[k : k + n]
            k += n
            if isinstance(d, Categorical):
                cum = np.cumsum(d.probs or np.full(len(d.choices), 1 / len(d.choices)))
                i = min(int(np.searchsorted(cum, uu[0], "right")), len(cum) - 1)
                out[p.name] = p.coerce(d.choices[i])
                continue
            lo, hi = (np.broadcast_to(np.asarray(x, float), p.shape).ravel() for x in d.support())
            if isinstance(d, LogUniform):
                lo, hi = np.log(lo), np.log(hi)
            v = lo + uu * (hi - lo)
            v = np.exp(v) if isinstance(d, LogUniform) else v
            out[p.name] = p.coerce(v if p.shape else v[0])
        for p in reg:
            if p.group == group and p.name in dists and p not in ps:
                out[p.name] = p.coerce(dists[p.name].sample(rng, p.shape))
    return out


def test_compiled_sampling_plan_matches_per_parameter_sampling():
    """The precompiled plan (vectorized draw, no per-value coerce) gives exactly the values,
    types and stream positions of coercing each parameter's draw one by one."""
    bound = RandomizationSpec.from_dict(PLAN_SPEC).bind(PLAN_REG)
    new, ref = Streams(11), Streams(11)
    for _ in range(200):
        a, b = bound.sample(new), _reference_sample(PLAN_REG, bound.dists, ref)
        assert list(a) == [p.name for p in PLAN_REG]
        for name, va in a.items():
            vb = b[name]
            assert type(va) is type(vb), name
            if isinstance(va, np.ndarray):
                assert va.dtype == vb.dtype and va.shape == vb.shape, name
                assert np.array_equal(va, vb), name
            else:
                assert va == vb, name
    for s in STREAMS_ALL:  # same stream positions afterwards
        assert new[s].random() == ref[s].random()
    seen = [bound.sample(new) for _ in range(200)]
    assert {v["appearance.pattern"] for v in seen} == {"flat", "checker"}
    assert {v["dynamics.level"] for v in seen} == {1.0, 2.5, 3.0}
    assert {v["dynamics.flag"] for v in seen} == {False, True}
    assert all(type(v["layout.n"]) is int and 1 <= v["layout.n"] <= 5 for v in seen)
    assert all(v["dynamics.counts"].dtype == np.int64 for v in seen)
    assert min(v["dynamics.friction"] for v in seen) == 0.1  # normal clipped to bounds


def test_sampled_arrays_are_fresh():
    """Mutating one episode's values never leaks into the next (nominals, constants, draws)."""
    bound = RandomizationSpec.from_dict(PLAN_SPEC).bind(PLAN_REG)
    streams = Streams(0)
    a = bound.sample(streams)
    for name in ("dynamics.offset", "appearance.tint", "dynamics.wind", "dynamics.gains"):
        a[name][...] = 0.75
    b = bound.sample(streams)
    assert b["dynamics.offset"].tolist() == [0.25, -0.5]
    assert b["appearance.tint"].tolist() == [1.0, 1.0, 1.0]
    assert not np.any(b["dynamics.wind"] == 0.75) and not np.any(b["dynamics.gains"] == 0.75)


def test_opencv_runs_without_its_spinning_thread_pool_unless_the_user_asks():
    """Image noise filters one small frame per step: OpenCV's pool workers would spin beside
    it (~15-20 % of a core). A subprocess, so the user's variable is seen at import."""
    import subprocess
    import sys

    code = "import cv2, simenvs.randomization.sensor; print(cv2.getNumThreads())"
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FOR_THREADS_NUM"}
    run = lambda e: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code], env=e, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert run(env) == "1"
    assert run({**env, "OPENCV_FOR_THREADS_NUM": "2"}) == "2"


def test_param_def_with_apply_and_signature():
    """``with_apply`` swaps only ``apply`` (a recompiled model's ids); ``signature`` is what
    rebinding compares: equal for equal definitions, different when a bound differs."""
    p = ParamDef("dynamics.x", np.ones(2), 0.0, 3.0, shape=(2,), unit="x", doc="d")
    seen = []
    q = p.with_apply(lambda m, v: seen.append((m, v)))
    assert p.apply is None and q.apply is not None
    q.apply("model", 2.0)
    assert seen == [("model", 2.0)]
    assert (q.name, q.shape, q.unit, q.doc, q.dtype) == (p.name, p.shape, p.unit, p.doc, p.dtype)
    assert q.coerce([5.0, -1.0]).tolist() == [3.0, 0.0]
    same = ParamDef("dynamics.x", np.ones(2), 0.0, 3.0, shape=(2,))
    assert q.signature() == p.signature() == same.signature()
    assert ParamDef("dynamics.x", np.ones(2), 0.0, 2.0, shape=(2,)).signature() != p.signature()
    assert ParamDef("dynamics.x", 1.0, 0.0, 3.0).signature() != p.signature()


def _appearance_spec():
    import mujoco

    from simenvs.core import scene

    spec = mujoco.MjSpec()
    mat = scene.add_random_color(spec, "box", (0.2, 0.4, 0.6, 1.0))
    tex = scene.add_random_texture(spec, "floor", size=16)
    spec.worldbody.add_geom(size=[0.1, 0, 0], material=mat)
    spec.worldbody.add_geom(pos=[0, 0, -1], size=[0.3, 0.3, 0.01], type=6, material=tex)
    spec.worldbody.add_light(name="key", pos=[0, 0, 2])
    spec.worldbody.add_camera(name="cam", pos=[0, -1, 0.5])
    return spec


def test_appearance_key_tracks_what_the_definitions_read():
    """Equal keys must mean equal appearance definitions (the env reuses them on a rebuild):
    the key changes with every nominal the definitions capture and with the cameras."""
    from simenvs.randomization.appearance import appearance_key, appearance_param_defs

    spec = _appearance_spec()
    m = spec.compile()
    key = appearance_key(m, ("cam",))
    assert appearance_key(spec.compile(), ("cam",)) == key
    assert appearance_key(m, ()) != key
    for field, row in (("mat_rgba", 0), ("light_pos", 0), ("light_diffuse", 0), ("cam_pos", 0)):
        m2 = spec.compile()
        getattr(m2, field)[row, 0] += 0.25
        assert appearance_key(m2, ("cam",)) != key, field
        # the definitions differ too: applying their nominals writes different models
        written = []
        for source in (m, m2):
            target = spec.compile()
            for p in appearance_param_defs(source, ("cam",)):
                if p.apply is not None:
                    p.apply(target, p.nominal)
            written.append(getattr(target, field).copy())
        assert not np.array_equal(*written), field


def test_texture_bank_restores_the_compiled_pixels():
    """The compiled (nominal) pixels are copied lazily, but before the first write: a
    pattern episode followed by a nominal one gives back the compiled texture."""
    from simenvs.randomization.appearance import TextureBank

    m = _appearance_spec().compile()
    compiled = m.tex_data.copy()
    bank = TextureBank(m)
    uploads = []
    p = "appearance.tex.floor"
    params = {f"{p}.pattern": "noise", f"{p}.color1": np.array([0.9, 0.1, 0.1]), f"{p}.seed": 3}
    assert bank.refresh(params, uploads.append) == 1
    assert not np.array_equal(m.tex_data, compiled)
    assert bank.refresh({f"{p}.pattern": "nominal"}, uploads.append) == 1
    assert np.array_equal(m.tex_data, compiled)
    assert uploads == [0, 0]
