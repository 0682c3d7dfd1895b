"""The randomization engine on its own: distributions, specs, streams, textures, sensor noise."""

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
