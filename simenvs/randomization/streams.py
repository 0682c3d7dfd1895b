"""Independent, named random streams derived from one seed.

Layout, appearance, dynamics, sensor (per-episode sensor parameters) and noise (per-step
noise draws) each get their own generator, so fixing or consuming one never shifts another.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

STREAMS = ("layout", "appearance", "dynamics", "sensor", "noise")

__all__ = ["STREAMS", "Streams"]


class Streams(Mapping):
    """A mapping ``name -> np.random.Generator`` with attribute access (``streams.layout``)."""

    def __init__(self, seed: int | None = None, seeds: Mapping[str, int] | None = None):
        self.seed = seed
        root = np.random.SeedSequence(seed)
        children = root.spawn(len(STREAMS))
        self._gens: dict[str, np.random.Generator] = {}
        seeds = dict(seeds or {})
        unknown = set(seeds) - set(STREAMS)
        if unknown:
            raise ValueError(f"unknown stream(s) {sorted(unknown)}; streams: {list(STREAMS)}")
        for name, child in zip(STREAMS, children):
            if name in seeds:
                child = np.random.SeedSequence(int(seeds[name]))
            self._gens[name] = np.random.Generator(np.random.PCG64(child))

    def __getitem__(self, name: str) -> np.random.Generator:
        return self._gens[name]

    def __getattr__(self, name: str) -> np.random.Generator:
        try:
            return self.__dict__["_gens"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self):
        return iter(self._gens)

    def __len__(self) -> int:
        return len(self._gens)
