"""Import hardware logs from CSV into rollouts through a column mapping.

A log has one row per control step: the observation measured at that step and the action
then sent. Rows are split into episodes by an episode-id column (or by time going backwards);
the last row of an episode contributes its observation only, since its action had no
recorded effect.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .format import Episode, Rollouts

__all__ = ["ColumnMapping", "import_csv"]


@dataclass
class ColumnMapping:
    """How CSV columns become observation fields, actions, time and episodes.

    ``obs``: field name -> list of column names (in order), e.g. ``{"pos": ["x", "y", "z"]}``.
    ``units``: field name -> unit string after ``scale`` (default ""). ``scale``: field name (or
    ``"actions"``) -> factor applied to the raw values (e.g. 0.001 for mm -> m). ``time``: the
    timestamp column in seconds (any origin); without it ``control_hz`` is required and rows are
    taken as evenly spaced. ``episode``: the episode-id column; without it a new episode starts
    wherever time does not increase.
    """

    obs: dict[str, list[str]]
    actions: list[str]
    time: str | None = None
    episode: str | None = None
    units: dict[str, str] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    success: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnMapping:
        allowed = {"obs", "actions", "time", "episode", "units", "scale", "success"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"unknown column-mapping keys {unknown}; allowed: {sorted(allowed)}")
        if "obs" not in d or "actions" not in d:
            raise ValueError("a column mapping needs 'obs' (field -> [columns]) and 'actions'")
        obs = {
            str(k): [str(c) for c in (v if isinstance(v, list) else [v])]
            for k, v in d["obs"].items()
        }
        return cls(
            obs=obs,
            actions=[str(c) for c in d["actions"]],
            time=d.get("time"),
            episode=d.get("episode"),
            units=dict(d.get("units", {})),
            scale={k: float(v) for k, v in d.get("scale", {}).items()},
            success=d.get("success"),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ColumnMapping:
        """Read a mapping from a JSON or YAML file."""
        text = Path(path).read_text()
        if str(path).endswith((".yaml", ".yml")):
            import yaml

            return cls.from_dict(yaml.safe_load(text))
        return cls.from_dict(json.loads(text))


def _parse_float(value: str, row: int, col: str, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(
            f"{where}: row {row}, column {col!r}: cannot read {value!r} as a number"
        ) from None


def import_csv(
    path: str | os.PathLike,
    mapping: ColumnMapping | Mapping[str, Any],
    *,
    control_hz: float | None = None,
    env_id: str | None = None,
    source: str | None = None,
    action_layout: Sequence[tuple[str, str, float, float]] | None = None,
    delimiter: str = ",",
) -> Rollouts:
    """Read a CSV log into validated ``Rollouts`` (save them with ``save_rollouts``)."""
    if not isinstance(mapping, ColumnMapping):
        mapping = ColumnMapping.from_dict(mapping)
    where = str(path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        rows = list(reader)
    needed = [c for cols in mapping.obs.values() for c in cols] + list(mapping.actions)
    needed += [c for c in (mapping.time, mapping.episode, mapping.success) if c]
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{where}: columns {missing} not in the CSV header {header}")
    if not rows:
        raise ValueError(f"{where}: no data rows")
    if mapping.time is None and not control_hz:
        raise ValueError(f"{where}: without a time column, pass control_hz")

    obs_cols = [c for cols in mapping.obs.values() for c in cols]
    n = len(rows)
    obs = np.empty((n, len(obs_cols)))
    act = np.empty((n, len(mapping.actions)))
    t = np.empty(n)
    ep_ids: list[str] = []
    succ: list[str] = []
    for i, r in enumerate(rows):
        line = i + 2  # header is line 1
        for j, c in enumerate(obs_cols):
            obs[i, j] = _parse_float(r[c], line, c, where)
        for j, c in enumerate(mapping.actions):
            act[i, j] = _parse_float(r[c], line, c, where)
        t[i] = _parse_float(r[mapping.time], line, mapping.time, where) if mapping.time else i
        ep_ids.append(r[mapping.episode] if mapping.episode else "")
        succ.append(r[mapping.success].strip().lower() if mapping.success else "")

    start = 0
    for name, cols in mapping.obs.items():
        obs[:, start : start + len(cols)] *= mapping.scale.get(name, 1.0)
        start += len(cols)
    act *= mapping.scale.get("actions", 1.0)
    if mapping.time is None:
        t = t / float(control_hz)

    # Episode boundaries: id changes, or (without an id column) time not increasing.
    bounds = [0]
    for i in range(1, n):
        new = ep_ids[i] != ep_ids[i - 1] if mapping.episode else t[i] <= t[i - 1]
        if new:
            bounds.append(i)
    bounds.append(n)
    if mapping.episode:
        seen: set[str] = set()
        for b in bounds[:-1]:
            if ep_ids[b] in seen:
                raise ValueError(
                    f"{where}: episode {ep_ids[b]!r} appears in two separate blocks of rows "
                    f"(again at line {b + 2}); rows of one episode must be contiguous"
                )
            seen.add(ep_ids[b])

    if not control_hz:
        diffs = np.concatenate([np.diff(t[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
        diffs = diffs[diffs > 0]
        if diffs.size == 0:
            raise ValueError(f"{where}: cannot infer control_hz from the time column; pass it")
        control_hz = 1.0 / float(np.median(diffs))

    episodes = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a < 2:
            raise ValueError(
                f"{where}: episode starting at line {a + 2} has a single row; an episode needs "
                "at least two (one action and its outcome)"
            )
        s = succ[b - 1]
        success = None if not s else s in ("1", "true", "yes", "1.0")
        episodes.append(
            Episode(
                obs=obs[a:b].copy(),
                actions=act[a : b - 1].copy(),
                time=(t[a:b] - t[a]).astype(np.float64),
                success=success,
                seed=None,
                params={"episode_id": ep_ids[a]} if mapping.episode else {},
            )
        )
    layout = [(name, len(cols), mapping.units.get(name, "")) for name, cols in mapping.obs.items()]
    r = Rollouts(
        episodes=episodes,
        obs_layout=layout,
        control_hz=float(control_hz),
        env_id=env_id,
        source=source or f"csv:{Path(path).name}",
        action_layout=list(action_layout) if action_layout is not None else None,
        extra={"csv_columns": {"obs": mapping.obs, "actions": mapping.actions}},
    )
    r.validate(where)
    return r
