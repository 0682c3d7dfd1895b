"""Stand-in realities for validating sim-to-real methods without a robot.

``make_reality(name, env_id)`` returns a ``RealSystem`` (see ``simenvs.simopt.real``) by name:

* ``proxy:hidden`` - the env with hidden dynamics just outside its training prior;
* ``proxy:latency`` / ``proxy:noise`` / ``proxy:motor`` - one unmodeled effect (extra action
  latency, sensor noise on the state observation, a command->motor non-linearity);
* effects combine with ``+``: ``proxy:hidden+noise+latency``; ``proxy:full`` is all four.

Keyword arguments: ``truth`` ({param: value}, replaces the automatic edge values),
``params`` (which params get hidden values; default: every scalar dynamics param the env
randomizes), ``margin`` and ``seed`` (how far outside the prior, which side), ``effects``
({effect: kwargs} overrides, e.g. ``{"latency": {"steps": 2}}``), ``prior`` (the training
randomization the hidden values sit outside of; default ``"default"``) and ``env_kwargs``
(default ``{"randomization": "none"}``: one fixed world in which only the layout varies).

* ``proxy:pybullet`` - the drone tasks on PyBullet, a second physics engine, with its hidden
  parameter offsets (``simenvs.pybullet.reality.HIDDEN_OFFSETS``); effects combine with it
  too: ``proxy:pybullet+noise``.

Other realities register under their own name with ``register_reality``; an exact registered
name wins over the effect syntax, and ``REGISTERED+effect+...`` adds effects to a registered
reality whose factory takes ``effects``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from simenvs.simopt.rollout import make_env

from .effects import EFFECTS, ExtraLatency, MotorNonlinearity, SensorNoise
from .proxy import EnvReality, edge_truth

__all__ = [
    "make_reality",
    "register_reality",
    "registered_realities",
    "EnvReality",
    "edge_truth",
    "ExtraLatency",
    "SensorNoise",
    "MotorNonlinearity",
    "EFFECTS",
]

RealityFactory = Callable[..., Any]
_REGISTRY: dict[str, RealityFactory] = {}
_PROXY_PARTS = ("hidden", *EFFECTS)


def register_reality(name: str, factory: RealityFactory, *, overwrite: bool = False) -> None:
    """Make ``make_reality(name, env_id, **kw)`` call ``factory(env_id, **kw)``."""
    if not name or ":" not in name:
        raise ValueError(
            f"reality names look like 'kind:name' (e.g. 'proxy:pybullet'), got {name!r}"
        )
    if name in _REGISTRY and not overwrite:
        raise ValueError(f"reality {name!r} is already registered")
    _REGISTRY[name] = factory


def registered_realities() -> list[str]:
    return sorted(_REGISTRY) + [f"proxy:{p}" for p in _PROXY_PARTS] + ["proxy:full"]


def _proxy(
    env_id: Any,
    parts: Sequence[str],
    *,
    truth: Mapping[str, float] | None = None,
    params: Sequence[str] | None = None,
    margin: float = 0.15,
    seed: int = 0,
    effects: Mapping[str, Mapping[str, Any]] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    prior: Any = "default",
    name: str = "proxy",
) -> EnvReality:
    effects = dict(effects or {})
    chosen = {p: dict(effects.get(p, {})) for p in parts if p in EFFECTS}
    # One fixed world: nothing but the layout varies between real episodes.
    env_kwargs = {"randomization": "none", **dict(env_kwargs or {})}
    reality = EnvReality(env_id, effects=chosen, env_kwargs=env_kwargs, name=name)
    if "hidden" in parts:
        if truth is None:  # edges of the *training* prior, read from a probe env
            probe = make_env(env_id, {**env_kwargs, "randomization": prior})
            try:
                truth = edge_truth(probe, params, margin=margin, seed=seed)
            finally:
                probe.close()
        elif params is not None:
            missing = sorted(set(params) - set(truth))
            if missing:
                raise ValueError(f"truth has no value for params {missing}")
        reality.truth = dict(truth)
    elif truth is not None:
        raise ValueError(f"{name}: 'truth' needs the 'hidden' part (e.g. proxy:hidden+noise)")
    return reality


def _split_vectors(truth: Mapping[str, Any]) -> dict[str, Any]:
    """``{"p": [a, b]}`` -> ``{"p[0]": a, "p[1]": b}``: the names SimOpt adapts and reports
    (``expand_params`` turns them back into whole vectors when the reality applies them)."""
    out: dict[str, Any] = {}
    for k, v in truth.items():
        if isinstance(v, (list, tuple)) or getattr(v, "ndim", 0) == 1:
            out.update({f"{k}[{i}]": float(x) for i, x in enumerate(v)})
        else:
            out[k] = v
    return out


def _pybullet_reality(
    env_id: Any,
    *,
    truth: Mapping[str, Any] | None = None,
    offsets: Mapping[str, float] | None = None,
    effects: Sequence[str] | Mapping[str, Mapping[str, Any]] = (),
    env_kwargs: Mapping[str, Any] | None = None,
    name: str = "proxy:pybullet",
    params: Sequence[str] | None = None,
    **_ignored: Any,
) -> EnvReality:
    """``proxy:pybullet``: the PyBullet env of a drone task with hidden dynamics (see
    ``simenvs.pybullet.reality.make_pybullet_reality``). Like ``proxy:hidden`` it is one fixed
    world (``randomization="none"`` unless ``env_kwargs`` say otherwise). ``params`` is only
    checked (the hidden values are fixed offsets, not edges of a prior); ``seed``, ``margin``
    and ``prior`` are accepted for the CLI's sake and ignored."""
    from simenvs.pybullet.reality import make_pybullet_reality

    kwargs = {"randomization": "none", **dict(env_kwargs or {})}
    real = make_pybullet_reality(
        env_id, truth=truth, offsets=offsets, effects=effects, env_kwargs=kwargs, name=name
    )
    real.truth = _split_vectors(real.truth or {})
    if params is not None:
        probe = real.env.unwrapped
        from simenvs.simopt.env_params import param_refs

        param_refs(probe, params)  # clear error for names the PyBullet env does not have
    return real


register_reality("proxy:pybullet", _pybullet_reality)


def make_reality(name: str, env_id: Any, **kwargs: Any) -> Any:
    """Build a stand-in reality by name for ``env_id`` (an id or an env factory)."""
    if name in _REGISTRY:
        return _REGISTRY[name](env_id, **kwargs)
    base, *extra = name.split("+")
    if base in _REGISTRY and extra and all(e in EFFECTS for e in extra):
        effects = dict(kwargs.pop("effects", None) or {})
        chosen = {e: dict(effects.get(e, {})) for e in extra}
        return _REGISTRY[base](env_id, effects=chosen, name=name, **kwargs)
    kind, _, rest = name.partition(":")
    if kind != "proxy" or not rest:
        raise ValueError(f"unknown reality {name!r}; known: {registered_realities()}")
    parts = list(_PROXY_PARTS) if rest == "full" else rest.split("+")
    bad = [p for p in parts if p not in _PROXY_PARTS]
    if bad:
        raise ValueError(
            f"unknown part(s) {bad} in reality {name!r}; combine {list(_PROXY_PARTS)} with '+' "
            f"or use one of {registered_realities()}"
        )
    return _proxy(env_id, parts, name=name, **kwargs)
