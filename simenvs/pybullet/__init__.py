"""PyBullet versions of the drone tasks: a second physics engine for cross-engine checks and a
stand-in reality for SimOpt.

The MuJoCo task stays the scene description and rulebook; PyBullet integrates the quad
(``quadrotor.py``: the same motor lag, CTBR rate loop, motor mode and drag), collides it with
the same geoms (``world.py``) and renders TinyRenderer images (``render.py``). Env classes:
``simenvs.pybullet.drone_race:PyBulletDroneRaceEnv`` and
``simenvs.pybullet.rooftop_landing:PyBulletRooftopLandingEnv`` (also through
``gym.make(id, engine="pybullet")``). Stand-in reality: ``simenvs.pybullet.reality``
(``proxy:pybullet``); throughput: ``simenvs.pybullet.bench``.

Submodules are imported on use, so ``import simenvs`` never imports pybullet.
"""

__all__ = ["drone_race", "rooftop_landing", "engine", "quadrotor", "world", "render", "reality",
           "bench", "geometry"]  # fmt: skip
