"""In-memory rollouts and their on-disk npz form (see the package docstring for the format).

One job: turn ``Rollouts`` into a validated npz file and back. Every problem found in a file
is reported at once, each naming the key, episode or step at fault, so a hardware log that
fails to load can be fixed in one pass.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "Episode",
    "Rollouts",
    "RolloutFormatError",
    "save_rollouts",
    "load_rollouts",
    "validate_file",
    "concat_rollouts",
]

FORMAT_NAME = "simenvs.rollouts"
FORMAT_VERSION = 1
# Median control period may differ from 1/control_hz by this fraction before a file is refused.
_DT_TOLERANCE = 0.5
_MAX_PROBLEMS = 30

Layout = list[tuple[str, int, str]]
ActionLayout = list[tuple[str, str, float, float]]


class RolloutFormatError(ValueError):
    """A rollout file or object breaks the schema; ``problems`` lists every issue found."""

    def __init__(self, where: str, problems: Sequence[str]):
        self.where = where
        self.problems = list(problems)
        shown = self.problems[:_MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = "\n".join(f"  - {p}" for p in shown)
        tail = f"\n  ... and {more} more" if more > 0 else ""
        n = len(self.problems)
        super().__init__(f"{where}: {n} problem{'s' * (n != 1)}:\n{lines}{tail}")


@dataclass
class Episode:
    """One episode: T actions and T+1 observations (the reset observation first).

    ``obs[t]`` is what the policy saw before ``actions[t]``; ``obs[t+1]`` what followed it.
    ``time[t]`` is seconds since the episode's reset. ``sim_state`` (optional) is the full
    MuJoCo integration state at each observation, used to replay from recorded states.
    """

    obs: np.ndarray
    actions: np.ndarray
    time: np.ndarray
    rewards: np.ndarray | None = None
    success: bool | None = None
    terminated: bool = False
    truncated: bool = False
    seed: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    sim_state: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def _layout_from(obj: Any) -> Layout:
    out = []
    for item in obj:
        name, size, unit = item
        out.append((str(name), int(size), str(unit)))
    return out


def _action_layout_from(obj: Any) -> ActionLayout | None:
    if obj is None:
        return None
    return [(str(n), str(u), float(lo), float(hi)) for n, u, lo, hi in obj]


@dataclass
class Rollouts:
    """Episodes that share one env, observation layout and control rate."""

    episodes: list[Episode]
    obs_layout: Layout
    control_hz: float
    env_id: str | None = None
    source: str = "unknown"
    action_layout: ActionLayout | None = None
    sim_state_spec: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.obs_layout = _layout_from(self.obs_layout)
        self.action_layout = _action_layout_from(self.action_layout)

    @property
    def dt(self) -> float:
        return 1.0 / self.control_hz

    @property
    def obs_dim(self) -> int:
        return sum(size for _, size, _ in self.obs_layout)

    @property
    def field_names(self) -> list[str]:
        return [name for name, _, _ in self.obs_layout]

    def field_slice(self, name: str) -> slice:
        """Columns of ``Episode.obs`` that hold field ``name``."""
        start = 0
        for fname, size, _ in self.obs_layout:
            if fname == name:
                return slice(start, start + size)
            start += size
        raise KeyError(f"no observation field {name!r}; fields are {self.field_names}")

    def columns(self, names: Iterable[str]) -> np.ndarray:
        """Column indices of the named fields, in the order given."""
        return np.concatenate([np.arange(self.obs_dim)[self.field_slice(n)] for n in names])

    def success_rate(self) -> float | None:
        known = [e.success for e in self.episodes if e.success is not None]
        return float(np.mean(known)) if known else None

    def validate(self, where: str = "rollouts") -> None:
        """Raise ``RolloutFormatError`` listing every schema problem of these episodes."""
        problems = _check_meta(self._metadata())
        problems += _check_episodes(self, problems_so_far=problems)
        if problems:
            raise RolloutFormatError(where, problems)

    def _metadata(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "source": self.source,
            "control_hz": float(self.control_hz),
            "dt": 1.0 / float(self.control_hz) if self.control_hz else None,
            "obs_layout": [list(x) for x in self.obs_layout],
            "action_layout": None
            if self.action_layout is None
            else [list(x) for x in self.action_layout],
            "sim_state_spec": self.sim_state_spec,
            "extra": self.extra,
            "episodes": [
                {
                    "seed": e.seed,
                    "success": e.success,
                    "terminated": bool(e.terminated),
                    "truncated": bool(e.truncated),
                    "params": _jsonable(e.params),
                }
                for e in self.episodes
            ],
        }


def _jsonable(x: Any) -> Any:
    """Plain-JSON copy of params (numpy scalars/arrays to lists; other objects to str)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return str(x)


# ---------------------------------------------------------------------------------- checks


def _check_meta(meta: Any) -> list[str]:
    p: list[str] = []
    if not isinstance(meta, dict):
        return [f"metadata must be a JSON object, got {type(meta).__name__}"]
    for key in ("env_id", "source", "control_hz", "obs_layout", "episodes"):
        if key not in meta:
            p.append(f"metadata is missing key {key!r}")
    hz = meta.get("control_hz")
    if "control_hz" in meta and not (
        isinstance(hz, (int, float)) and not isinstance(hz, bool) and math.isfinite(hz) and hz > 0
    ):
        p.append(f"metadata.control_hz must be a positive finite number, got {hz!r}")
    if meta.get("env_id") is not None and not isinstance(meta.get("env_id"), str):
        p.append(f"metadata.env_id must be a string or null, got {meta.get('env_id')!r}")
    layout = meta.get("obs_layout")
    if "obs_layout" in meta:
        if not isinstance(layout, list) or not layout:
            p.append(
                "metadata.obs_layout must be a non-empty list of [name, size, unit], "
                f"got {layout!r}"
            )
        else:
            seen = set()
            for i, item in enumerate(layout):
                ok = (
                    isinstance(item, list)
                    and len(item) == 3
                    and isinstance(item[0], str)
                    and item[0]
                    and isinstance(item[1], int)
                    and not isinstance(item[1], bool)
                    and item[1] > 0
                    and isinstance(item[2], str)
                )
                if not ok:
                    p.append(
                        f"metadata.obs_layout[{i}] must be [name (str), size (int > 0), "
                        f"unit (str)], got {item!r}"
                    )
                elif item[0] in seen or "/" in item[0]:
                    p.append(
                        f"metadata.obs_layout[{i}]: field name {item[0]!r} repeated or has '/'"
                    )
                else:
                    seen.add(item[0])
    al = meta.get("action_layout")
    al_ok = al is None or (
        isinstance(al, list)
        and all(
            isinstance(a, list)
            and len(a) == 4
            and isinstance(a[0], str)
            and isinstance(a[1], str)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in a[2:])
            for a in al
        )
    )
    if not al_ok:
        p.append(
            "metadata.action_layout must be null or a list of [name, unit, value_at_-1, "
            f"value_at_+1], got {al!r}"
        )
    spec = meta.get("sim_state_spec")
    if spec is not None and not (isinstance(spec, int) and not isinstance(spec, bool) and spec > 0):
        p.append(f"metadata.sim_state_spec must be null or a positive int, got {spec!r}")
    eps = meta.get("episodes")
    if "episodes" in meta:
        if not isinstance(eps, list):
            p.append(f"metadata.episodes must be a list of objects, got {type(eps).__name__}")
        else:
            for i, e in enumerate(eps):
                if not isinstance(e, dict):
                    p.append(f"metadata.episodes[{i}] must be an object, got {e!r}")
                    continue
                seed = e.get("seed")
                if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
                    p.append(f"metadata.episodes[{i}].seed must be an int or null, got {seed!r}")
                if e.get("success") not in (None, True, False):
                    p.append(f"metadata.episodes[{i}].success must be true/false/null")
                if not isinstance(e.get("params", {}), dict):
                    p.append(f"metadata.episodes[{i}].params must be an object")
    return p


def _first_nonfinite(arr: np.ndarray) -> tuple[int, int] | None:
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    idx = np.argwhere(bad)[0]
    return int(idx[0]), int(idx[1]) if idx.size > 1 else -1


def _check_array(
    p: list[str], name: str, arr: Any, ndim: int, width: int | None, rows: int | None
) -> bool:
    """Dtype and shape checks shared by file and in-memory validation; True if usable."""
    if not isinstance(arr, np.ndarray):
        p.append(f"{name} must be a numpy array, got {type(arr).__name__}")
        return False
    if arr.dtype.kind != "f":
        p.append(f"{name} must have a float dtype, got {arr.dtype}")
        return False
    shape_ok = arr.ndim == ndim and (width is None or ndim == 1 or arr.shape[1] == width)
    if not shape_ok:
        want = "(N,)" if ndim == 1 else f"(N, {width if width is not None else 'k'})"
        p.append(f"{name} must have shape {want}, got {arr.shape}")
        return False
    if rows is not None and arr.shape[0] != rows:
        p.append(f"{name} has {arr.shape[0]} rows, expected {rows}")
        return False
    return True


def _check_episodes(r: Rollouts, problems_so_far: list[str]) -> list[str]:
    p: list[str] = []
    if problems_so_far:
        return p
    d, a_dim = r.obs_dim, None
    if r.action_layout is not None:
        a_dim = len(r.action_layout)
    for i, e in enumerate(r.episodes):
        w = f"episode {i}"
        if not isinstance(e.actions, np.ndarray) or e.actions.ndim != 2:
            p.append(f"{w}: actions must be a 2-D float array (T, action_dim)")
            continue
        t = e.actions.shape[0]
        ok = _check_array(p, f"{w}: obs", e.obs, 2, d, t + 1)
        ok &= _check_array(p, f"{w}: actions", e.actions, 2, a_dim, t)
        ok &= _check_array(p, f"{w}: time", e.time, 1, None, t + 1)
        if e.rewards is not None:
            ok &= _check_array(p, f"{w}: rewards", e.rewards, 1, None, t)
        if e.sim_state is not None:
            ok &= _check_array(p, f"{w}: sim_state", e.sim_state, 2, None, t + 1)
        if not ok:
            continue
        for name, arr in (("obs", e.obs), ("actions", e.actions)):
            bad = _first_nonfinite(arr)
            if bad is not None:
                step, col = bad
                p.append(
                    f"{w}: {name} has a non-finite value ({arr[step, col]}) at step {step}"
                    + (f", field {_field_of(r, col)!r}" if name == "obs" else f", column {col}")
                )
        if not np.all(np.isfinite(e.time)):
            p.append(f"{w}: time has non-finite values")
        elif t > 0 and np.any(np.diff(e.time) <= 0):
            k = int(np.argmax(np.diff(e.time) <= 0))
            p.append(
                f"{w}: time must increase strictly within an episode, but time[{k + 1}]="
                f"{e.time[k + 1]} <= time[{k}]={e.time[k]}"
            )
        elif t > 1 and r.control_hz:
            med = float(np.median(np.diff(e.time)))
            want = 1.0 / r.control_hz
            if abs(med - want) > _DT_TOLERANCE * want:
                p.append(
                    f"{w}: median time step {med:.6g} s disagrees with control_hz "
                    f"{r.control_hz:g} (expected {want:.6g} s)"
                )
    if r.sim_state_spec is None and any(e.sim_state is not None for e in r.episodes):
        p.append("episodes carry sim_state but metadata.sim_state_spec is null")
    widths = {e.sim_state.shape[1] for e in r.episodes if isinstance(e.sim_state, np.ndarray)}
    if len(widths) > 1:
        p.append(f"sim_state width differs between episodes: {sorted(widths)}")
    if r.sim_state_spec is not None and any(e.sim_state is None for e in r.episodes):
        p.append("metadata.sim_state_spec is set but some episodes have no sim_state")
    adims = {e.actions.shape[1] for e in r.episodes if isinstance(e.actions, np.ndarray)}
    if len(adims) > 1:
        p.append(f"action width differs between episodes: {sorted(adims)}")
    return p


def _field_of(r: Rollouts, col: int) -> str:
    start = 0
    for name, size, _ in r.obs_layout:
        if col < start + size:
            return name if size == 1 else f"{name}[{col - start}]"
        start += size
    return f"column {col}"


# ------------------------------------------------------------------------------------ save


def save_rollouts(rollouts: Rollouts, path: str | os.PathLike) -> Path:
    """Validate and write ``rollouts`` to ``path`` (npz) atomically; returns the path."""
    path = Path(path)
    rollouts.validate(where=str(path))
    eps = rollouts.episodes
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_NAME),
        "version": np.array(FORMAT_VERSION, dtype=np.int64),
        "metadata": np.array(json.dumps(rollouts._metadata(), allow_nan=False)),
        "episode_lengths": np.array([len(e) for e in eps], dtype=np.int64),
    }
    a_dim = eps[0].actions.shape[1] if eps else len(rollouts.action_layout or [])
    obs = np.concatenate([e.obs for e in eps]) if eps else np.zeros((0, rollouts.obs_dim))
    for name in rollouts.field_names:
        arrays[f"obs/{name}"] = np.ascontiguousarray(obs[:, rollouts.field_slice(name)])
    arrays["actions"] = np.concatenate([e.actions for e in eps]) if eps else np.zeros((0, a_dim))
    arrays["time"] = (
        np.concatenate([e.time for e in eps]).astype(np.float64) if eps else np.zeros(0)
    )
    if eps and all(e.rewards is not None for e in eps):
        arrays["rewards"] = np.concatenate([e.rewards for e in eps])
    if eps and rollouts.sim_state_spec is not None:
        arrays["sim_state"] = np.concatenate([e.sim_state for e in eps])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


# ------------------------------------------------------------------------------------ load

_KNOWN = {"format", "version", "metadata", "episode_lengths", "actions", "time", "rewards"}


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    p: list[str] = []
    arrays: dict[str, np.ndarray] = {}
    if not path.exists():
        raise FileNotFoundError(f"rollout file {str(path)!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                try:
                    arrays[key] = z[key]
                except ValueError as exc:  # object arrays need pickle: refused
                    p.append(
                        f"key {key!r} holds a Python-object array ({exc}); pickles are refused"
                    )
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise RolloutFormatError(str(path), [f"not a readable npz file: {exc}"]) from None
    return arrays, p


def _str_scalar(p: list[str], arrays: Mapping[str, np.ndarray], key: str) -> str | None:
    if key not in arrays:
        p.append(f"missing key {key!r}")
        return None
    a = arrays[key]
    if a.shape != () or a.dtype.kind != "U":
        p.append(
            f"key {key!r} must be a 0-d unicode string array, got dtype {a.dtype} shape {a.shape}"
        )
        return None
    return str(a)


def _parse(arrays: dict[str, np.ndarray], p: list[str]) -> Rollouts | None:
    fmt = _str_scalar(p, arrays, "format")
    if fmt is not None and fmt != FORMAT_NAME:
        p.append(f"key 'format' is {fmt!r}, expected {FORMAT_NAME!r}")
    if "version" not in arrays:
        p.append("missing key 'version'")
    else:
        v = arrays["version"]
        if v.shape != () or v.dtype.kind not in "iu":
            p.append(f"key 'version' must be a 0-d integer, got dtype {v.dtype} shape {v.shape}")
        elif int(v) != FORMAT_VERSION:
            p.append(f"unsupported format version {int(v)}; this reader handles {FORMAT_VERSION}")
    raw = _str_scalar(p, arrays, "metadata")
    meta: Any = None
    if raw is not None:
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError as exc:
            p.append(f"metadata is not valid JSON: {exc}")
    if meta is not None:
        p += _check_meta(meta)
    for key in ("episode_lengths", "actions", "time"):
        if key not in arrays:
            p.append(f"missing key {key!r}")
    if p:
        return None

    lengths = arrays["episode_lengths"]
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        p.append(
            f"episode_lengths must be a 1-D integer array, got dtype {lengths.dtype} shape "
            f"{lengths.shape}"
        )
        return None
    if np.any(lengths < 0):
        p.append(f"episode_lengths must be >= 0, got {lengths.tolist()}")
        return None
    n_ep = lengths.shape[0]
    if len(meta["episodes"]) != n_ep:
        p.append(
            f"metadata.episodes has {len(meta['episodes'])} entries but episode_lengths has {n_ep}"
        )
    n_act, n_obs = int(lengths.sum()), int(lengths.sum()) + n_ep
    layout = _layout_from(meta["obs_layout"])
    a_layout = _action_layout_from(meta.get("action_layout"))
    fields = []
    for name, size, _ in layout:
        key = f"obs/{name}"
        if key not in arrays:
            p.append(f"missing key {key!r} (field {name!r} of metadata.obs_layout)")
            continue
        arr = arrays[key]
        if arr.ndim == 1 and size == 1:
            arr = arr[:, None]
        if _check_array(p, f"key {key!r}", arr, 2, size, n_obs):
            fields.append(arr)
    extra_fields = [
        k for k in arrays if k.startswith("obs/") and k[4:] not in {n for n, _, _ in layout}
    ]
    if extra_fields:
        p.append(f"keys {extra_fields} are not in metadata.obs_layout")
    a_dim = len(a_layout) if a_layout is not None else None
    _check_array(p, "key 'actions'", arrays["actions"], 2, a_dim, n_act)
    time_ok = _check_array(p, "key 'time'", arrays["time"], 1, None, n_obs)
    if time_ok and arrays["time"].dtype != np.float64:
        p.append(f"key 'time' must be float64 (seconds), got {arrays['time'].dtype}")
    rewards = arrays.get("rewards")
    if rewards is not None:
        _check_array(p, "key 'rewards'", rewards, 1, None, n_act)
    sim_state = arrays.get("sim_state")
    if sim_state is not None:
        _check_array(p, "key 'sim_state'", sim_state, 2, None, n_obs)
        if meta.get("sim_state_spec") is None:
            p.append("key 'sim_state' present but metadata.sim_state_spec is null")
    elif meta.get("sim_state_spec") is not None:
        p.append("metadata.sim_state_spec is set but key 'sim_state' is missing")
    unknown = [
        k for k in arrays if k not in _KNOWN and k != "sim_state" and not k.startswith("obs/")
    ]
    if unknown:
        p.append(
            f"unknown keys {unknown}; allowed: {sorted(_KNOWN | {'sim_state', 'obs/<field>'})}"
        )
    if p:
        return None

    obs = np.concatenate(fields, axis=1)
    ends_a = np.cumsum(lengths)
    starts_a = ends_a - lengths
    episodes = []
    for i in range(n_ep):
        sa, ea = int(starts_a[i]), int(ends_a[i])
        so, eo = sa + i, ea + i + 1
        em = meta["episodes"][i]
        episodes.append(
            Episode(
                obs=obs[so:eo],
                actions=arrays["actions"][sa:ea],
                time=arrays["time"][so:eo],
                rewards=None if rewards is None else rewards[sa:ea],
                success=em.get("success"),
                terminated=bool(em.get("terminated", False)),
                truncated=bool(em.get("truncated", False)),
                seed=em.get("seed"),
                params=em.get("params", {}),
                sim_state=None if sim_state is None else sim_state[so:eo],
            )
        )
    r = Rollouts(
        episodes=episodes,
        obs_layout=layout,
        control_hz=float(meta["control_hz"]),
        env_id=meta.get("env_id"),
        source=str(meta.get("source")),
        action_layout=a_layout,
        sim_state_spec=meta.get("sim_state_spec"),
        extra=meta.get("extra") or {},
    )
    p += _check_episodes(r, [])
    return None if p else r


def validate_file(path: str | os.PathLike) -> list[str]:
    """Every schema problem of a rollout file (empty list: the file is valid)."""
    path = Path(path)
    try:
        arrays, p = _read_npz(path)
    except RolloutFormatError as exc:
        return exc.problems
    _parse(arrays, p)
    return p


def load_rollouts(path: str | os.PathLike) -> Rollouts:
    """Load and validate a rollout file; raise ``RolloutFormatError`` listing every problem."""
    path = Path(path)
    arrays, p = _read_npz(path)
    r = _parse(arrays, p)
    if r is None:
        raise RolloutFormatError(str(path), p)
    return r


def concat_rollouts(parts: Sequence[Rollouts]) -> Rollouts:
    """Join rollouts of the same env/layout/control rate into one set."""
    if not parts:
        raise ValueError("concat_rollouts needs at least one Rollouts")
    first = parts[0]
    for i, r in enumerate(parts[1:], 1):
        if r.obs_layout != first.obs_layout or not math.isclose(r.control_hz, first.control_hz):
            raise ValueError(
                f"rollouts {i} has layout {r.obs_layout} at {r.control_hz} Hz, but rollouts 0 has "
                f"{first.obs_layout} at {first.control_hz} Hz"
            )
    out = Rollouts(
        episodes=[e for r in parts for e in r.episodes],
        obs_layout=first.obs_layout,
        control_hz=first.control_hz,
        env_id=first.env_id,
        source=first.source,
        action_layout=first.action_layout,
        sim_state_spec=first.sim_state_spec,
        extra=dict(first.extra),
    )
    return out
