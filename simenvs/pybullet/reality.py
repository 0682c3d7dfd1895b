"""PyBullet as a stand-in reality for SimOpt: ``proxy:pybullet``.

A second engine with *hidden true dynamics*: the PyBullet env of the task, every episode reset
with quad parameters that differ from the MuJoCo nominal (``HIDDEN_OFFSETS``), wrapped as an
``EnvReality`` so its rollouts look like a robot's (only ``layout.*`` params are recorded, the
truth stays in ``reality.truth`` for error reports). In free flight the two engines agree to
machine precision at equal parameters (see ``tests/test_pybullet.py``), so the sim-to-"real"
gap here is the hidden offsets plus PyBullet's own contacts, collision shapes and renderer;
``effects`` adds the unmodeled effects of ``simenvs.reality.effects`` on top.

Register it (the integrator does this in ``simenvs.reality``)::

    register_reality("proxy:pybullet", make_pybullet_reality)

then ``make_reality("proxy:pybullet", "simenvs/DroneRace-v0")``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from simenvs.robots.quadrotor import QuadrotorParams, get_preset

__all__ = [
    "HIDDEN_OFFSETS",
    "TASKS",
    "pybullet_env_factory",
    "pybullet_truth",
    "make_pybullet_reality",
]

# Hidden "true" dynamics of the PyBullet reality, relative to the nominal quad: multipliers of
# the nominal value (inertia_scale and thrust_scale are already relative: their true value).
# Each lies outside the "default" training randomization of the drone tasks and inside the
# parameter bounds, like a real airframe that is heavier, with worn props and a sagging
# battery, slower motors and more drag than its datasheet.
HIDDEN_OFFSETS: dict[str, float] = {
    "dynamics.quad.mass": 1.08,
    "dynamics.quad.inertia_scale": 1.15,
    "dynamics.quad.kf": 0.93,
    "dynamics.quad.km": 1.15,
    "dynamics.quad.motor_tau": 1.35,
    "dynamics.quad.thrust_scale": 0.88,
    "dynamics.quad.drag": 1.6,
}
_ABSOLUTE = ("dynamics.quad.inertia_scale", "dynamics.quad.thrust_scale")

TASKS: dict[str, str] = {
    "DroneRace": "simenvs.pybullet.drone_race:PyBulletDroneRaceEnv",
    "RooftopLanding": "simenvs.pybullet.rooftop_landing:PyBulletRooftopLandingEnv",
}


def _task_of(env_id: str) -> str:
    for task in TASKS:
        if task in str(env_id):
            return task
    raise ValueError(
        f"proxy:pybullet has no PyBullet version of {env_id!r}; tasks: {sorted(TASKS)} "
        "(e.g. 'simenvs/DroneRace-v0')"
    )


def pybullet_env_factory(env_id: str) -> Callable[..., Any]:
    """``factory(**env_kwargs)`` building the PyBullet env of a drone task id."""
    import importlib

    module, _, name = TASKS[_task_of(env_id)].partition(":")
    return getattr(importlib.import_module(module), name)


def pybullet_truth(
    preset: str | QuadrotorParams = "racer", offsets: Mapping[str, float] | None = None
) -> dict[str, Any]:
    """Absolute hidden parameter values for a quad preset: nominal x ``offsets``.

    ``offsets`` defaults to ``HIDDEN_OFFSETS``; keys must be ``dynamics.quad.*`` names.
    """
    p = get_preset(preset)
    nominal = {
        "dynamics.quad.mass": p.mass,
        "dynamics.quad.inertia_scale": 1.0,
        "dynamics.quad.kf": p.kf,
        "dynamics.quad.km": p.km,
        "dynamics.quad.motor_tau": p.motor_tau,
        "dynamics.quad.thrust_scale": 1.0,
        "dynamics.quad.drag": np.asarray(p.drag, dtype=float),
    }
    out: dict[str, Any] = {}
    for k, v in (HIDDEN_OFFSETS if offsets is None else offsets).items():
        if k not in nominal:
            raise ValueError(f"unknown hidden parameter {k!r}; allowed: {sorted(nominal)}")
        out[k] = float(v) if k in _ABSOLUTE else nominal[k] * float(v)
        if isinstance(out[k], np.ndarray):
            out[k] = out[k].tolist()
        else:
            out[k] = float(out[k])
    return out


def make_pybullet_reality(
    env_id: str,
    *,
    truth: Mapping[str, Any] | None = None,
    offsets: Mapping[str, float] | None = None,
    effects: Sequence[str] | Mapping[str, Mapping[str, Any]] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    name: str = "proxy:pybullet",
) -> Any:
    """The ``proxy:pybullet`` reality for a drone task id (``simenvs/DroneRace-v0``,
    ``simenvs/RooftopLanding-v0``): an ``EnvReality`` over the PyBullet env with hidden
    dynamics ``truth`` (default: ``pybullet_truth(preset, offsets)``; the preset comes from
    ``env_kwargs``, default "racer") fixed every episode and optional ``effects``."""
    from simenvs.reality import EnvReality

    kwargs = dict(env_kwargs or {})
    kwargs.pop("engine", None)
    if truth is None:
        truth = pybullet_truth(kwargs.get("preset", "racer"), offsets)
    elif offsets is not None:
        raise ValueError("pass either truth (absolute values) or offsets (multipliers), not both")
    return EnvReality(
        pybullet_env_factory(env_id), truth=dict(truth), effects=effects, env_kwargs=kwargs,
        name=name,
    )  # fmt: skip
