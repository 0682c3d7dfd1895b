"""``simenvs/RooftopLanding-v0``: find a clear spot on a cluttered city rooftop and land softly.

Why the 0.8 kg "racer" quad and a real-scale city: the landing-site criteria of the
urban-landing literature (Castagno, Yao & Atkins: surface tilt <= 16 deg, clear area >= 4 m^2,
>= 0.2 m clearance) are stated in metres for real vehicles. With the racer (0.45 m tip to tip)
in a real-scale block (34-46 m, roofs 10-26 m up, AC units, tanks and stair entrances at their
real sizes) they apply literally, wind and gusts in m/s mean what they mean outdoors, and the
downward camera sees a roof at the scale a real landing camera would. A crazyflie in a scaled
city would make a 4 m^2 clear area 500 times its footprint (nothing to decide) and shrink the
0.2 m clearance to millimetres. See ``RooftopLandingEnv`` for the observation/action/reward
contract.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import cv2
import mujoco
import numpy as np
from gymnasium import spaces

import simenvs.core.scene as scene
from simenvs.core import ParamDef
from simenvs.envs.quadrotor_task import _NOISE_BLOCK, _NQ, QuadrotorTask, merge_reward_weights
from simenvs.robots.quadrotor import QuadrotorParams, get_preset

from .city import City, CityParams
from .kernels import ctbr_action_kernel, flight_reward_kernel, state_obs_kernel
from .safe_map import SafeMap, SafeMapConfig, Site, compute_safe_map, generate_landable_city
from .scene import (
    POOL_BOXES,
    POOL_CYLINDERS,
    POOL_HFIELDS,
    ROLE_OBSTACLE,
    ROLE_STREET,
    CityPool,
    _quat_mats,
    add_city_pool,
)

__all__ = ["RooftopLandingEnv", "REWARD_WEIGHTS", "FAILURES"]

REWARD_WEIGHTS = {
    "progress": 1.0,  # per metre of approach (horizontal + 0.5 x vertical) to the site
    "descent": 1.0,  # per m/s of sink rate above the allowed 0.4 + 0.6 h (h: height above surface)
    "tilt": 0.5,  # times (1 - cos tilt)
    "touchdown": 2.0,  # once, for a soft touchdown on a safe spot
    "success": 10.0,  # settled on a safe site
    "failure": 10.0,  # subtracted on crash, unsafe site or leaving the block
    "body_rate": 0.002,  # times |w|^2 (rad^2/s^2)
    "action_change": 0.02,  # times |a_t - a_{t-1}|^2 (normalized)
}
FAILURES = ("obstacle", "hard_touchdown", "unsafe_site", "out_of_bounds", "timeout")
_ORACLE_STATE = [
    ("site_rel_pos", 3, "m"),
    ("site_radius", 1, "m"),
    ("altitude", 1, "m"),
    ("clearance_grid", 9, "m"),
]
GRID_CELL = 3.0  # m, side of a clearance-grid cell (3 x 3, world-aligned, centred on the quad)
_GRID_POOL = 0.5  # m, resolution of the max-pooled height map the grid is read from
_BOUNDS_MARGIN = 10.0  # m beyond the block before a flight is out of bounds
_GUST_AXES = np.array([1.0, 1.0, 0.3])  # vertical gusts weaker than horizontal ones
_NO_CONTACTS = (np.zeros(0, np.int64), np.zeros((0, 3)), np.zeros(0))  # read-only
for _a in _NO_CONTACTS:
    _a.flags.writeable = False


class RooftopLandingEnv(QuadrotorTask):
    """Land a quadrotor softly on a safe spot of a procedurally generated city block.

    Each episode builds a new block from ``layout.city.seed`` (``city.py``): buildings with
    flat, stepped, shed, gable and hip roofs, parapets and structured rooftop clutter whose
    amount follows ``layout.city.clutter_density``. Ground truth (``safe_map.py``) is computed
    from that geometry: the safe map, height map, clearance map and candidate sites
    (centres of the largest clear circles; ``sites[0]`` is the best). The quad starts level
    above the block at a random position and height.

    **Observation** (``obs_mode``):

    * ``"state"`` (oracle, float32, 36)::

        pos 3 (m, world) | vel 3 (m/s, world) | rot 9 (body-to-world R, row-major) |
        body_rates 3 (rad/s) | site_rel_pos 3 (best site - pos, world, m) |
        site_radius 1 (clear-circle radius, m) | altitude 1 (m above the surface straight
        below: a tilt-compensated downward rangefinder) | clearance_grid 9 (m above the highest
        surface in each of 3 x 3 world-aligned ``GRID_CELL`` = 3 m cells centred on the quad,
        row-major, rows -y to +y, columns -x to +x) | last_action 4

      Everything the scripted expert acts on is in it (the expert is a memoryless function
      of these values), so behaviour cloning can copy it. ``sensor.range.noise_std`` perturbs
      altitude and clearance grid; both saturate at ``range_max``.

    * ``"state_rgb"`` / ``"state_depth"`` (perception, no target): ``{"state": pos, vel, rot,
      body_rates, range_grid (n*n metres: a downward LiDAR-like grid, ``range_grid`` rays per
      side over ``range_fov_deg``, body frame, ``range_max`` when nothing is hit),
      last_action; "image": the downward camera ``down``}`` (64x64 uint8; depth: 255 =
      ``depth_max`` = 40 m).
    * ``"rgb"`` / ``"depth"`` / ``"rgbd"``: the downward camera alone.

    **Action**: CTBR (collective thrust, roll/pitch/yaw rate) in [-1, 1], or four motor speeds
    with ``action_mode="motors"``; ``action_layout()`` gives the physical map.

    **Success**: touchdown with vertical speed <= 0.5 m/s and tilt <= 15 deg, the centre over the
    safe map and every landing-gear (collision box) contact on clear roof (clearance >=
    0.2 m), no obstacle contact, then settled (in contact, speed < 0.25 m/s) for 1 s.
    **Failures** (``info["failure"]``): "obstacle" (hitting a facade, parapet or clutter from
    the side: a crash), "hard_touchdown" (touchdown too fast or tilted, or tipping over: a
    crash), "unsafe_site" (soft touchdown off the safe map: street, on top of clutter, next to
    clutter, steep roof), "out_of_bounds", "timeout" (truncation).

    **Reward**: progress toward the target site (the best site in ``"state"`` mode, the nearest
    candidate in perception modes), a sink-rate penalty near the surface, an upright term,
    touchdown/success bonuses, a failure penalty, small body-rate and action-change penalties
    (``REWARD_WEIGHTS``; override with ``reward_weights={...}``).

    **Info**: every step ``is_success``, ``failure``, ``crashed``, ``touched_down``,
    ``touchdown_speed`` (m/s), ``touchdown_tilt_deg`` (-1 before the first touchdown),
    ``dist_to_site`` (horizontal, m),
    ``over_safe`` (centre above the safe map); at reset also ``safe_map``, ``height_map``,
    ``clearance_map``, ``map_origin``, ``map_resolution``, ``sites`` (rows x, y, z, radius,
    area, roof, tilt), ``best_site``. With ``labels=True``: ``safe_mask`` (H, W) uint8, 1 where
    the downward-camera pixel sees safe roof.

    **Options**: ``clutter_density`` (fix it; None: randomized), ``city_params``
    (``CityParams``), ``city`` (a fixed ``City`` for every episode), ``require_site``,
    ``n_distractors`` (None: 6 with image observations, 0 with state only, where they would
    only cost time), ``range_grid``, ``range_fov_deg``, ``range_max``, ``reward_weights``,
    ``safe_config`` (``SafeMapConfig``), ``map_info`` (put the per-episode maps and sites in the
    reset info; off by default because their size changes per block, which vector envs cannot
    stack — ``ground_truth()`` always returns them), plus the QuadrotorTask ones (``preset`` default
    "racer", ``action_mode``, ``ground_effect`` default True). Easy variant for RL smoke tests:
    ``clutter_density=0.0`` with ``obs_mode="state"``.
    """

    max_episode_steps = 1440  # 30 s at 48 Hz
    default_image_size = (64, 64)
    obs_camera = "down"
    render_camera = "follow"
    randomized_cameras = ("down",)
    extra_obs_modes = ("state_depth",)
    depth_max = 40.0
    expert_entry_point = "simenvs.agents.experts.rooftop_landing:RooftopLandingExpert"

    def __init__(
        self,
        *,
        clutter_density: float | None = None,
        city_params: CityParams | None = None,
        city: City | None = None,
        require_site: bool = True,
        n_distractors: int | None = None,
        range_grid: int = 8,
        range_fov_deg: float = 70.0,
        range_max: float = 40.0,
        reward_weights: Mapping[str, float] | None = None,
        safe_config: SafeMapConfig | None = None,
        preset: str | QuadrotorParams = "racer",
        ground_effect: bool = True,
        map_info: bool = False,
        **kwargs: Any,
    ):
        if clutter_density is not None and not (
            isinstance(clutter_density, (int, float)) and 0.0 <= clutter_density <= 1.0
        ):
            raise ValueError(f"clutter_density must be in [0, 1] or None, got {clutter_density!r}")
        if n_distractors is None:  # flying distractors only matter to cameras
            n_distractors = 0 if kwargs.get("obs_mode", "state") == "state" else 6
        if not 0 <= int(n_distractors) <= 16:
            raise ValueError(f"n_distractors must be in [0, 16], got {n_distractors!r}")
        if not 1 <= int(range_grid) <= 32:
            raise ValueError(f"range_grid must be in [1, 32] rays per side, got {range_grid!r}")
        if not 0.0 <= float(range_fov_deg) < 170.0:
            raise ValueError(f"range_fov_deg must be in [0, 170), got {range_fov_deg!r}")
        if not float(range_max) > 0.0:
            raise ValueError(f"range_max must be > 0 m, got {range_max!r}")
        if city is not None and not isinstance(city, City):
            raise TypeError(f"city must be a City (see city.generate_city), got {type(city)}")
        weights = merge_reward_weights(REWARD_WEIGHTS, reward_weights)
        qp = get_preset(preset)
        self.clutter_density = None if clutter_density is None else float(clutter_density)
        cp = city_params or CityParams()
        self.city_params = replace(
            cp,
            max_boxes=min(cp.max_boxes, POOL_BOXES),
            max_cylinders=min(cp.max_cylinders, POOL_CYLINDERS),
            max_sloped=min(cp.max_sloped, POOL_HFIELDS),
        )
        self.fixed_city = city
        self._fixed_map: SafeMap | None = None
        self.require_site = bool(require_site)
        self.n_distractors = int(n_distractors)
        self.map_info = bool(map_info)
        self.range_n = int(range_grid)
        self.range_fov = math.radians(float(range_fov_deg))
        self.range_max = float(range_max)
        self.weights = weights
        self.safe_config = safe_config or SafeMapConfig(drone_radius=qp.radius)
        self.city: City | None = None
        self.safe_map: SafeMap | None = None
        self.site: Site | None = None
        self._pool: CityPool | None = None
        self._map_grid: tuple[float, float, float, int, int] | None = None
        self._gh_x = self._gh_y = self._gh = math.nan
        half = 0.5 * self.city_params.block_size[1] + 15.0
        kwargs.setdefault("arena_low", (-half, -half, -1.0))
        kwargs.setdefault("arena_high", (half, half, 80.0))
        super().__init__(preset=qp, ground_effect=ground_effect, **kwargs)
        self._ray_dirs_body = self._make_ray_dirs()
        self._ray_vec = np.zeros(3 * self.range_n**2)
        self._ray_geomid = np.zeros(self.range_n**2, np.int32)
        self._ray_dist = np.zeros(self.range_n**2)
        # rays see the street (group 0) and the collision pool incl. sloped roofs (group 3),
        # not the quad, distractors (1) or the drawn meshes (2)
        self._ray_group = np.array([1, 0, 0, 1, 0, 0], np.uint8)
        self._oracle = self.obs_mode == "state"  # shaping toward the best site (else nearest)
        # numba kernels for the per-step hooks (kernels.py), unless a subclass overrides a
        # hook they inline (then the Python path runs, calling it)
        cls = type(self)
        inlined = ("ground_height", "task_state", "_task_state_list", "_clearance_list",
                   "_quad_state_list", "_imu_noise", "_range_noise")  # fmt: skip
        same = all(getattr(cls, n) is getattr(RooftopLandingEnv, n) for n in inlined)
        self._fast_obs = same and self._oracle
        self._fast_act = (
            same
            and self.action_mode == "ctbr"
            and cls._ground_effect_at is RooftopLandingEnv._ground_effect_at
            and cls.air_velocity is RooftopLandingEnv.air_velocity
        )
        self._fast_eval = self._oracle and cls._contacts is RooftopLandingEnv._contacts
        self._site_key: Any = self  # the Site whose values _site_arr holds (none yet)
        self._site_arr = np.full(4, math.nan)
        self._wind_arr = np.zeros(3)
        self._mg_arr = np.zeros(3)  # height-map origin x, y, resolution
        self._gg_arr = np.zeros(6)  # clearance-grid map origin x, y, res, k, cmax, rmax
        self._hmap = np.zeros((0, 0), np.float32)
        self._unseen: dict[Any, list] = {}  # camera -> what _never_seen leaves out (cached)

    # ------------------------------------------------------------------ scene
    def build_spec(self, rng: np.random.Generator) -> mujoco.MjSpec:
        spec = mujoco.MjSpec()
        spec.modelname = "rooftop_landing"
        add_city_pool(spec)
        # static city geoms are posed once per episode, not every step (see reset_task)
        spec.option.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP
        if self.n_distractors:
            scene.add_distractors(spec, self.n_distractors, [0.0, 0.0, 22.0], [24.0, 24.0, 14.0])
        self.add_quad(spec, (0.0, 0.0, 30.0))
        body = spec.body("quad")
        body.sleep = mujoco.mjtSleepPolicy.mjSLEEP_NEVER
        t = math.radians(35.0)
        body.add_camera(
            name="follow", mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACK,
            pos=[-9.0 * math.cos(t), 0.0, 9.0 * math.sin(t)],
            xyaxes=[0.0, -1.0, 0.0, math.sin(t), 0.0, math.cos(t)], fovy=60.0,
        )  # fmt: skip
        return spec

    # ------------------------------------------------------------------ params
    def param_defs(self) -> list[ParamDef]:
        defs = super().param_defs()
        m = self.model
        self._pool = CityPool(m)
        self._static_lights = np.flatnonzero(m.light_bodyid == 0)
        self._static_cams = np.flatnonzero(m.cam_bodyid == 0)
        return defs + [
            ParamDef("layout.city.seed", 0, 0, 2**31 - 1, dtype=int,
                     doc="city block generator seed"),
            ParamDef("layout.city.clutter_density", self.city_params.clutter_density, 0.0, 1.0,
                     unit="1", doc="rooftop clutter: 0 empty roofs, 1 crowded"),
            ParamDef("layout.start.height", 6.0, 1.0, 30.0, unit="m",
                     doc="start height above the highest point of the block"),
            ParamDef("layout.start.pos", np.zeros(2), -1.0, 1.0, shape=(2,), unit="block",
                     doc="start xy as a fraction of the block's half size"),
            ParamDef("layout.start.yaw", 0.0, -math.pi, math.pi, unit="rad"),
            ParamDef("dynamics.wind.gust_std", 0.0, 0.0, 4.0, unit="m/s",
                     doc="std of the gust velocity (Ornstein-Uhlenbeck, z at 30 %)"),
            ParamDef("dynamics.wind.gust_tau", 1.0, 0.1, 10.0, unit="s",
                     doc="gust correlation time"),
            ParamDef("sensor.range.noise_std", 0.0, 0.0, 1.0, unit="m",
                     doc="range-grid measurement noise"),
            ParamDef("sensor.range.dropout", 0.0, 0.0, 0.5, unit="1",
                     doc="share of range rays returning range_max"),
        ]  # fmt: skip

    def randomization_presets(self) -> dict[str, dict]:
        base = super().randomization_presets()
        dens = self.clutter_density
        layout = {
            "layout.city.seed": [0, 1_000_000_000],
            "layout.city.clutter_density": [0.25, 1.0] if dens is None else dens,
            "layout.start.height": [3.0, 10.0],
            "layout.start.pos": [-0.8, 0.8],
            "layout.start.yaw": [-math.pi, math.pi],
        }
        look = {
            "appearance.color.sky": [0.3, 1.0],
            "appearance.light.sun.dir_offset": {"dist": "uniform", "low": [-0.7, -0.7, -0.2],
                                                "high": [0.7, 0.7, 0.4]},
            "appearance.distractor.*.size": [0.1, 0.5],
            "appearance.distractor.*.vel": [-3.0, 3.0],
        }  # fmt: skip
        default = {
            **layout,
            **look,
            "dynamics.quad.wind": {"dist": "uniform", "low": [-1.5, -1.5, -0.2],
                                   "high": [1.5, 1.5, 0.2]},
            "dynamics.wind.gust_std": [0.0, 0.8],
            "dynamics.wind.gust_tau": [0.5, 2.0],
            "sensor.range.noise_std": [0.0, 0.05],
        }  # fmt: skip
        wide = {
            **layout,
            **look,
            "appearance.light.sun.dir_offset": {"dist": "uniform", "low": [-1.2, -1.2, -0.3],
                                                "high": [1.2, 1.2, 0.6]},
            "dynamics.quad.wind": {"dist": "uniform", "low": [-3.0, -3.0, -0.5],
                                   "high": [3.0, 3.0, 0.5]},
            "dynamics.wind.gust_std": [0.0, 2.0],
            "dynamics.wind.gust_tau": [0.3, 4.0],
            "sensor.range.noise_std": [0.0, 0.2],
            "sensor.range.dropout": [0.0, 0.1],
        }  # fmt: skip
        return {"default": {**base["default"], **default}, "wide": {**base["wide"], **wide}}

    # ------------------------------------------------------------------ reset
    def make_city(self) -> tuple[City, SafeMap]:
        """This episode's block and its ground truth (from the sampled layout params)."""
        if self.fixed_city is not None:
            if self._fixed_map is None:
                self._fixed_map = compute_safe_map(self.fixed_city, self.safe_config)
            return self.fixed_city, self._fixed_map
        dens = float(self.params.get("layout.city.clutter_density", 0.6))
        seed = int(self.params.get("layout.city.seed", 0))
        return generate_landable_city(
            seed, self.city_params, self.safe_config, self.require_site, clutter_density=dens
        )

    def reset_task(self, rng: np.random.Generator) -> None:
        super().reset_task(rng)
        m, prm = self.model, self.params
        city, smap = self.make_city()
        self._pool.apply(city, m)
        self._pose_static()
        self.city, self.safe_map = city, smap
        self.site = smap.best
        self._sites_xyz = np.array([[s.x, s.y, s.z] for s in smap.sites]).reshape(-1, 3)
        self._best_xyz = self._sites_xyz[0].tolist() if len(self._sites_xyz) else None
        h, w = smap.shape
        self._map_grid = (float(smap.origin[0]), float(smap.origin[1]), smap.resolution, h, w)
        self._mg_arr = np.array(self._map_grid[:3], float)
        self._hmap = smap.height
        self._height_at = smap.height.item  # (row, col) -> float: cheaper than indexing
        self._gh_x = self._gh_y = self._gh = math.nan  # ground_height's last query: none
        self._safe_at = smap.safe.item
        self._safe_map_arr = smap.safe
        self._build_grid_map(smap)
        bx0, by0, bx1, by1 = city.bounds
        cx, cy = (bx0 + bx1) / 2, (by0 + by1) / 2
        hx, hy = max((bx1 - bx0) / 2 - 2.0, 0.0), max((by1 - by0) / 2 - 2.0, 0.0)
        sp = np.asarray(prm.get("layout.start.pos", np.zeros(2)), float)
        start = np.array([cx + sp[0] * hx, cy + sp[1] * hy,
                          city.top + float(prm.get("layout.start.height", 6.0))])  # fmt: skip
        self.reset_quad(start, float(prm.get("layout.start.yaw", 0.0)))
        margin = _BOUNDS_MARGIN
        self._bounds = (bx0 - margin, by0 - margin, bx1 + margin, by1 + margin,
                        city.top + 30.0)  # fmt: skip
        self._bounds_arr = np.array(self._bounds, float)
        w = self.weights
        self._wt_arr = np.array([w[k] for k in ("progress", "descent", "tilt", "body_rate",
                                               "action_change", "failure")], float)  # fmt: skip
        # wind: steady part from dynamics.quad.wind (QuadrotorTask), gusts on top
        self._wind_steady = self._wind.copy()
        self._wind_steady_l = self._wind.tolist()
        self._gust = [0.0, 0.0, 0.0]
        self._gust_std = float(prm.get("dynamics.wind.gust_std", 0.0))
        self._gust_tau = float(prm.get("dynamics.wind.gust_tau", 1.0))
        self._gust_decay = 1.0 - self.dt / self._gust_tau
        self._gust_buf: list[list[float]] = []
        self._gust_i = 0
        self._range_std = float(prm.get("sensor.range.noise_std", 0.0))
        self._range_drop = float(prm.get("sensor.range.dropout", 0.0))
        self._rn_buf = np.zeros((0, 10))
        self._rn_i = 0
        # landing state
        self._touched = False
        self._settle = 0
        self._td_speed = -1.0  # -1 until the first touchdown (NaN would break equality checks)
        self._td_tilt = -1.0
        self._prev_vz = 0.0
        self._phi = self._potential(start)
        self._reset_info = smap.to_info()

    def _pose_static(self) -> None:
        """Write the world poses of static elements edited in place this episode.

        With sleeping enabled (``build_spec``) MuJoCo computes the pose of world-body geoms,
        lights and cameras once instead of every step (the city's ~250 geoms would otherwise
        cost more than the quad's whole dynamics); edits of their model fields (the city pool,
        the randomized sun) must be propagated by hand.
        """
        m, d = self.model, self.data
        g = self._pool.static_geoms
        d.geom_xpos[g] = m.geom_pos[g]
        d.geom_xmat[g] = _quat_mats(np.asarray(m.geom_quat[g])).reshape(-1, 9)
        lights = self._static_lights
        if len(lights):
            d.light_xpos[lights] = m.light_pos[lights]
            ldir = np.asarray(m.light_dir[lights])
            d.light_xdir[lights] = ldir / np.linalg.norm(ldir, axis=1, keepdims=True)
        cams = self._static_cams
        if len(cams):
            d.cam_xpos[cams] = m.cam_pos[cams]
            d.cam_xmat[cams] = _quat_mats(np.asarray(m.cam_quat[cams])).reshape(-1, 9)

    def ground_truth(self) -> dict[str, Any]:
        """This episode's ground truth: safe / height / clearance maps (their size follows the
        block), map origin and resolution, every candidate site (best first), the best site."""
        return dict(self._reset_info)

    def reset_info(self) -> dict[str, Any]:
        # fixed-size entries only by default: the maps change size per block, which vector envs
        # cannot stack; map_info=True (or ground_truth()) gives them
        keys = self._reset_info if self.map_info else ("map_origin", "map_resolution", "best_site")
        info = {k: self._reset_info[k] for k in keys}
        info["num_sites"] = len(self._reset_info["sites"])
        info["failure"] = ""
        if self.labels:
            info["safe_mask"] = self.safe_mask()
        return info

    # ------------------------------------------------------------------ step
    def apply_action(self, action: np.ndarray) -> None:
        """``QuadrotorTask.apply_action`` with the CTBR map, drag reference and ground effect
        in one kernel call (the same values: kernels.py)."""
        if not self._fast_act:
            return super().apply_action(action)
        if action.dtype != np.float64:
            action = action.astype(np.float64)
        q = self.quad
        wind = self.air_velocity()
        if wind is not None:
            w = self._wind_arr
            w[0], w[1], w[2] = wind
        if not ctbr_action_kernel(
            action, q._ctrl, q.cmd_ids, q._a_scale, q._a_offset, self._wind_arr,
            wind is not None, q.drag_ids, q.v_qpos, self.ground_effect, self._hmap,
            self._mg_arr, self._prop_radius, self._force, self._xfrc,
        ):  # fmt: skip
            raise ValueError(f"quad position is not finite: {q.v_pos.tolist()}")
        a0, a1, a2, a3 = a = action.tolist()
        p = self._prev_action
        self._action_change2 = (
            (a0 - p[0]) ** 2 + (a1 - p[1]) ** 2 + (a2 - p[2]) ** 2 + (a3 - p[3]) ** 2
        )
        self._prev_action = a

    def air_velocity(self) -> list[float] | None:
        """Steady wind plus Ornstein-Uhlenbeck gusts (the noise is drawn in blocks of 256
        steps, one RNG call)."""
        if self._gust_std <= 0.0:
            return super().air_velocity()
        i = self._gust_i
        if i >= len(self._gust_buf):
            dt, tau = self.dt, self._gust_tau
            scale = self._gust_std * math.sqrt(2 * dt / tau) * _GUST_AXES
            self._gust_buf = (self.streams.noise.standard_normal((256, 3)) * scale).tolist()
            i = 0
        self._gust_i = i + 1
        n, g, a = self._gust_buf[i], self._gust, self._gust_decay
        g[0] = a * g[0] + n[0]
        g[1] = a * g[1] + n[1]
        g[2] = a * g[2] + n[2]
        w = self._wind_steady_l
        return [w[0] + g[0], w[1] + g[1], w[2] + g[2]]

    def ground_height(self, x: float, y: float) -> float:
        """Top surface below (x, y): roofs, clutter or street (ground effect uses it)."""
        if x == self._gh_x and y == self._gh_y:  # the last query (up to 3 a step, same point)
            return self._gh
        rc = self._cell(x, y)
        v = 0.0 if rc is None else self._height_at(*rc)
        self._gh_x, self._gh_y, self._gh = x, y, v
        return v

    def _cell(self, x: float, y: float) -> tuple[int, int] | None:
        """Safe-map cell of a world point (None outside the map or before the first reset)."""
        g = self._map_grid
        if g is None:
            return None
        ox, oy, res, h, w = g
        c = int((x - ox) // res)
        r = int((y - oy) // res)
        return (r, c) if 0 <= r < h and 0 <= c < w else None

    def _potential(self, p: Any) -> float:
        s = self._target_for(p)
        if s is None:
            return 0.0
        dxy = math.hypot(p[0] - s[0], p[1] - s[1])
        return -(dxy + 0.5 * abs(p[2] - s[2]))

    def _target_for(self, p: Any) -> list[float] | None:
        """Shaping target: best site (oracle state mode) or the nearest candidate."""
        if not len(self._sites_xyz):
            return None
        if self._oracle:
            return self._best_xyz
        d2 = np.sum((self._sites_xyz[:, :2] - np.asarray(p[:2])) ** 2, axis=1)
        return self._sites_xyz[int(np.argmin(d2))].tolist()

    def _contacts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(other geom ids, contact positions, |normal z|) of the quad's collision box."""
        d = self.data
        n = d.ncon
        if n == 0:
            return _NO_CONTACTS
        con = d.contact
        geom = np.asarray(con.geom[:n])
        g = self.quad.collision_geom
        mine = (geom[:, 0] == g) | (geom[:, 1] == g)
        other = np.where(geom[:, 0] == g, geom[:, 1], geom[:, 0])[mine]
        nz = np.abs(np.asarray(con.frame[:n, 2]))[mine]
        return other, np.asarray(con.pos[:n])[mine], nz

    def over_safe(self, x: float, y: float) -> bool:
        """Is the point above the safe map?"""
        rc = self._cell(x, y)
        return rc is not None and bool(self.safe_map.safe[rc])

    def site_ok(self, xy: np.ndarray, contact_pos: np.ndarray) -> bool:
        """Centre over the safe map and every contact on clear roof of the same roof."""
        smap = self.safe_map
        if not self.over_safe(float(xy[0]), float(xy[1])):
            return False
        if len(contact_pos) == 0:
            return True
        roof = int(smap.roof_at(xy[0], xy[1]))
        cl = smap.clearance_at(contact_pos[:, 0], contact_pos[:, 1])
        rf = smap.roof_at(contact_pos[:, 0], contact_pos[:, 1])
        need = self.safe_config.clearance - smap.resolution
        return bool(np.all(cl >= need) and np.all(rf == roof))

    def evaluate(self) -> tuple[float, bool, dict]:
        if self._fast_eval and not self.data.ncon and not self.labels:
            return self._evaluate_flight()  # no contact: _contacts() would find none
        q, w = self.quad, self.weights
        qp = q.v_qpos.tolist()
        p = qp[:3]
        vx, vy, vz, wx, wy, wz = q.v_qvel.tolist()
        rz = q.rot_list(qp[3:])[8]  # R[2, 2]: cos(tilt), of the current attitude
        failure = ""
        success = False
        bonus = 0.0
        other, cpos, nz = self._contacts()  # (PyBullet's env overrides it: no ncon test here)
        if len(other):
            tilt = math.degrees(math.acos(max(-1.0, min(1.0, rz))))
            roles = self._pool.role[other]
            obstacle = roles == ROLE_OBSTACLE
            # a contact on a near-horizontal face below the quad is a touchdown (on a roof, the
            # street or the top of clutter); anything else touching clutter, parapets or
            # facades is a collision
            under = (nz > 0.7) & (cpos[:, 2] < p[2])
            if np.any(obstacle & ~under):
                failure = "obstacle"
            else:
                on_bad = bool(np.any(obstacle | (roles == ROLE_STREET)))
                if not self._touched:
                    self._touched = True
                    self._td_speed = max(-self._prev_vz, -vz)
                    self._td_tilt = tilt
                    if self._td_speed > 0.5 or tilt > 15.0:
                        failure = "hard_touchdown"
                    elif on_bad or not self.site_ok(p, cpos):
                        failure = "unsafe_site"
                    else:
                        bonus += w["touchdown"]
                        self._settle = 0
                if not failure:
                    if tilt > 15.0:
                        failure = "hard_touchdown"  # tipped over after touchdown
                    elif on_bad or not self.site_ok(p, cpos):
                        failure = "unsafe_site"  # slid off the safe area
                    elif vx * vx + vy * vy + vz * vz < 0.25 * 0.25:
                        self._settle += 1
                        if self._settle * self.dt >= 1.0 - 1e-9:
                            success = True
                    else:
                        self._settle = 0
        elif self._touched:  # bounced or took off again: a new touchdown will be judged
            self._touched = False
            self._settle = 0
        if not failure and not success:
            x0, y0, x1, y1, ztop = self._bounds
            if not (x0 <= p[0] <= x1 and y0 <= p[1] <= y1 and -1.0 <= p[2] <= ztop):
                failure = "out_of_bounds"
        self._prev_vz = vz
        # reward
        site = self._best_xyz if self._oracle else self._target_for(p)
        if site is None:  # _potential(p), inlined: dxy and rc also go into info
            phi = dxy = 0.0
        else:
            dxy = math.hypot(p[0] - site[0], p[1] - site[1])
            phi = -(dxy + 0.5 * abs(p[2] - site[2]))
        reward = w["progress"] * (phi - self._phi)
        self._phi = phi
        # _cell() and ground_height(), inlined; the latter's cache is filled for the
        # observation, which reads the same point
        x, y = p[0], p[1]
        gh, over_safe = 0.0, False
        g = self._map_grid
        if g is not None:
            ox, oy, res, nr, nc = g
            c = int((x - ox) // res)
            r = int((y - oy) // res)
            if 0 <= r < nr and 0 <= c < nc:
                gh, over_safe = self._height_at(r, c), self._safe_at(r, c)
        self._gh_x, self._gh_y, self._gh = x, y, gh
        h = p[2] - gh
        sink_allowed = 0.4 + 0.6 * max(h, 0.0)
        dt = self._dt  # the control period (the dt property, without the call)
        reward -= w["descent"] * max(0.0, -vz - sink_allowed) * dt * 10.0
        reward -= w["tilt"] * (1.0 - rz) * dt * 10.0
        # rate_penalty(), inlined (wx, wy, wz: the body rates read above)
        reward -= w["body_rate"] * (wx * wx + wy * wy + wz * wz) + w["action_change"] * (
            self._action_change2
        )
        reward += bonus
        if success:
            reward += w["success"]
        elif failure:
            reward -= w["failure"]
        terminated = bool(failure) or success
        if not terminated and self.step_count >= self.max_episode_steps:
            failure = "timeout"
        info = self._step_info(success, failure, math.inf if site is None else dxy, over_safe)
        if self.labels:
            info["safe_mask"] = self.safe_mask()
        return reward, terminated, info

    def _evaluate_flight(self) -> tuple[float, bool, dict]:
        """``evaluate`` in flight (no contact, oracle target): the same values, the reward
        arithmetic in one kernel call (kernels.py); ``math.hypot`` stays here."""
        q = self.quad
        qp = q.v_qpos
        x, y, z = qp[:3].tolist()
        site = self._best_xyz
        if site is None:
            phi = dxy = 0.0
        else:
            dxy = math.hypot(x - site[0], y - site[1])
            phi = -(dxy + 0.5 * abs(z - site[2]))
        reward, oob, over_safe, ok = flight_reward_kernel(
            qp, q.v_qvel, phi, self._phi, self._hmap, self._safe_map_arr, self._mg_arr,
            self._bounds_arr, self._wt_arr, self._dt, self._action_change2,
        )  # fmt: skip
        if not ok:
            raise ValueError(f"quad position is not finite: {[x, y, z]}")
        self._phi = phi
        self._prev_vz = q.v_vel.item(2)
        if self._touched:  # bounced or took off again: a new touchdown will be judged
            self._touched = False
            self._settle = 0
        failure = "out_of_bounds" if oob else ""
        if not oob and self.step_count >= self.max_episode_steps:
            failure = "timeout"
        dist = math.inf if site is None else dxy
        return reward, oob, self._step_info(False, failure, dist, over_safe)

    def _step_info(self, success: bool, failure: str, dist: float, over_safe: bool) -> dict:
        return {
            "is_success": success,
            "failure": failure,
            "crashed": failure in ("obstacle", "hard_touchdown"),
            "touched_down": self._touched,
            "touchdown_speed": self._td_speed,
            "touchdown_tilt_deg": self._td_tilt,
            "dist_to_site": dist,
            "over_safe": over_safe,
        }

    # ------------------------------------------------------------------ observations
    def task_state(self) -> np.ndarray | list[float]:
        if self.obs_mode != "state":
            return self.range_grid()
        return self._task_state_list(self.quad.v_qpos.tolist())

    def _task_state_list(self, qpos: list[float]) -> list[float]:
        if self.obs_mode != "state":
            return self.range_grid().tolist()
        x, y, z = qpos[0], qpos[1], qpos[2]
        s = self.site
        out = [0.0] * 4 if s is None else [s.x - x, s.y - y, s.z - z, s.radius]
        alt = z - self.ground_height(x, y)  # altitude()
        rm = self.range_max
        out.append(rm if rm < alt else alt)
        out += self._clearance_list(qpos)
        if self._range_std > 0.0:  # on the 10 sensed values (altitude, clearance grid)
            i, buf = self._rn_i, self._rn_buf  # _range_noise(), inlined but for the refills
            if i < len(buf):
                self._rn_i = i + 1
                n = buf[i]
            else:
                n = self._range_noise()
            out[4:] = map(operator.add, out[4:], n)
        return out

    def task_state_layout(self) -> list[tuple[str, int, str]]:
        if self.obs_mode == "state":
            return list(_ORACLE_STATE)
        return [("range_grid", self.range_n**2, "m")]

    def _range_noise(self) -> np.ndarray:
        """Range noise for the 10 sensed state values, drawn in blocks of 256 steps (rows of
        an array the observation kernel reads)."""
        i = self._rn_i
        if i >= len(self._rn_buf):
            self._rn_buf = self._range_std * self.streams.noise.standard_normal((256, 10))
            i = 0
        self._rn_i = i + 1
        return self._rn_buf[i]

    def _imu_noise(self) -> np.ndarray:
        """``QuadrotorTask._imu_noise`` (same draws) keeping the block as an array, which the
        observation kernel reads."""
        i = self._noise_i
        buf = self._noise_buf
        if i >= len(buf):
            buf = self._noise_buf = self._imu_std * self.streams.noise.standard_normal(
                (_NOISE_BLOCK, _NQ)
            )
            i = 0
        self._noise_i = i + 1
        return buf[i]

    def state_obs(self) -> np.ndarray:
        """``QuadrotorTask.state_obs`` with the oracle task state, in one kernel call (the
        same values: kernels.py)."""
        if not self._fast_obs:
            return super().state_obs()
        imu_i = -1
        if self._imu_noisy:  # rows drawn in the order of the Python path: IMU, then range
            i = self._noise_i
            buf = self._noise_buf
            if type(buf) is not np.ndarray:  # rows handed back as lists (vector envs)
                self._noise_buf = np.asarray(buf, dtype=np.float64).reshape(-1, _NQ)
            if i < len(buf):
                self._noise_i = i + 1
            else:
                self._imu_noise()
                i = 0
            imu_i = i
        rn_i = -1
        if self._range_std > 0.0:
            i = self._rn_i
            if i < len(self._rn_buf):
                self._rn_i = i + 1
            else:
                self._range_noise()
                i = 0
            rn_i = i
        s = self.site
        if s is not self._site_key:
            self._site_key = s
            self._site_arr = (
                np.full(4, math.nan) if s is None else np.array([s.x, s.y, s.z, s.radius])
            )
        q = self.quad
        o = state_obs_kernel(
            q.v_qpos, q.v_qvel, self._noise_buf, imu_i, self._site_arr, self._hmap,
            self._mg_arr, self._grid_map, self._gg_arr, self.range_max, self._rn_buf, rn_i,
            self.last_action,
        )  # fmt: skip
        if not len(o):
            raise ValueError(f"quad position is not finite: {q.v_pos.tolist()}")
        return o

    def _build_grid_map(self, smap: SafeMap) -> None:
        """Max-pooled height map (``_GRID_POOL`` cells, each the highest surface within about
        half a grid cell) that ``clearance_grid`` samples with 9 lookups per step; a zero border
        stands for the street outside the map."""
        res = smap.resolution
        k = 2 * max(0, int(round(0.5 * _GRID_POOL / res - 0.5))) + 1  # odd block size
        # block maxima: a k x k dilation sampled at block centres (10x faster than a reshape)
        coarse = cv2.dilate(smap.height, np.ones((k, k), np.uint8))[k // 2 :: k, k // 2 :: k]
        n = 2 * int(round(0.5 * GRID_CELL / (k * res))) + 1
        pooled = cv2.dilate(np.ascontiguousarray(coarse), np.ones((n, n), np.uint8))
        # a zero border (the street) wide enough that every in-bounds quad reads inside
        pad = int(math.ceil((_BOUNDS_MARGIN + GRID_CELL) / (k * res))) + 1
        self._grid_map = np.pad(pooled, pad)
        self._grid_origin = (smap.origin[0] - pad * k * res, smap.origin[1] - pad * k * res)
        self._grid_res = k * res
        self._grid_step = int(round(GRID_CELL / (k * res)))
        # what _clearance_list reads, as Python values (flat index -> float: 9 lookups a step;
        # a list of the map's floats would cost more at reset than it saves)
        gh, gw = self._grid_map.shape
        step = self._grid_step
        self._grid = (
            float(self._grid_origin[0]), float(self._grid_origin[1]), self._grid_res, step,
            step * gw, gw - 2 * step - 1, gh - 2 * step - 1, gw, self._grid_map.ravel().item,
        )  # fmt: skip
        g = self._grid
        self._gg_arr = np.array([g[0], g[1], g[2], step, g[5], g[6]], float)

    def altitude(self) -> float:
        """Height (m) of the body centre above the surface straight below (roof, clutter top or
        street): what a downward, tilt-compensated rangefinder reads."""
        x, y, z = self.quad.v_pos.tolist()
        return min(z - self.ground_height(x, y), self.range_max)

    def clearance_grid(self) -> np.ndarray:
        """Height (m) of the body centre above the highest surface in each of 3 x 3
        world-aligned cells of ``GRID_CELL`` m centred on the quad (row-major, rows -y to +y,
        columns -x to +x; the centre is the quad's own cell), capped at ``range_max``: a coarse
        local height map such as a downward LiDAR or an onboard map provides."""
        return np.array(self._clearance_list())

    def _clearance_list(self, pos: list[float] | None = None) -> list[float]:
        """``clearance_grid`` as floats (the per-step path: no numpy arithmetic; ``pos``: the
        body position, or the quad's qpos, if the caller has read it)."""
        x, y, z = self.quad.v_pos.tolist() if pos is None else pos[:3]
        ox, oy, res, k, kw, cmax, rmax, w, top = self._grid
        c = int((x - ox) // res) - k
        if c < 0:
            c = 0
        if c > cmax:
            c = cmax
        r = int((y - oy) // res) - k
        if r < 0:
            r = 0
        if r > rmax:
            r = rmax
        i0 = r * w + c  # the 3 x 3 cells' top surfaces, rows -y to +y, columns -x to +x
        i1 = i0 + kw
        i2 = i1 + kw
        rm = self.range_max
        a, b, e = z - top(i0), z - top(i0 + k), z - top(i0 + 2 * k)
        f, g, h = z - top(i1), z - top(i1 + k), z - top(i1 + 2 * k)
        i, j, l = z - top(i2), z - top(i2 + k), z - top(i2 + 2 * k)  # noqa: E741
        return [
            rm if rm < a else a, rm if rm < b else b, rm if rm < e else e,
            rm if rm < f else f, rm if rm < g else g, rm if rm < h else h,
            rm if rm < i else i, rm if rm < j else j, rm if rm < l else l,
        ]  # fmt: skip

    def extra_observation_space(self, mode: str) -> spaces.Space:
        h, w = self.image_size
        return spaces.Dict(
            {"state": self.state_space(), "image": spaces.Box(0, 255, (h, w, 1), np.uint8)}
        )

    def extra_obs(self, mode: str) -> Any:
        return {"state": self.noisy_state(), "image": self.camera_obs("depth")}

    def _make_ray_dirs(self) -> np.ndarray:
        n = self.range_n
        half = self.range_fov / 2
        a = np.linspace(-half, half, n) if n > 1 else np.zeros(1)
        tx, ty = np.meshgrid(np.tan(a), np.tan(a))
        dirs = np.stack([tx.ravel(), ty.ravel(), -np.ones(n * n)], axis=1)
        return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)

    def range_grid(self) -> np.ndarray:
        """Distances (m) along a grid of body-fixed downward rays; ``range_max`` if no hit."""
        m, d, q = self.model, self.data, self.quad
        R = np.array(q.rot_list()).reshape(3, 3)  # current attitude (xmat lags a substep)
        vec = self._ray_dirs_body @ R.T
        self._ray_vec[:] = vec.ravel()
        n = self.range_n**2
        mujoco.mj_multiRay(m, d, np.array(q.v_pos), self._ray_vec, self._ray_group, 1,
                           q.body_id, self._ray_geomid, self._ray_dist, None, n,
                           self.range_max)  # fmt: skip
        dist = self._ray_dist.copy()
        dist[dist < 0] = self.range_max
        if self._range_std > 0 or self._range_drop > 0:
            noise = self.streams.noise
            dist += self._range_std * noise.standard_normal(n)
            if self._range_drop > 0:
                dist[noise.random(n) < self._range_drop] = self.range_max
            np.clip(dist, 0.0, self.range_max, out=dist)
        return dist

    # ------------------------------------------------------------------ labels & rendering
    def safe_mask(self, camera: str | None = None) -> np.ndarray:
        """(H, W) uint8 of the observation camera: 1 where the pixel sees safe roof surface.

        Back-projects a clean depth render through the camera model and looks the points up in
        the safe map; a pixel is safe when its point lies on the roof surface (not on clutter or
        a distractor) of a safe cell.
        """
        cam = self.obs_camera if camera is None else camera
        h, w = self.image_size
        depth = self.render_camera_image(cam, w, h, "depth").astype(np.float64)
        m, d = self.model, self.data
        cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, cam)
        t = math.tan(math.radians(float(m.cam_fovy[cid])) / 2)
        u = (np.arange(w) + 0.5 - w / 2) / (h / 2) * t
        vv = (h / 2 - np.arange(h) - 0.5) / (h / 2) * t
        xc = u[None, :] * depth
        yc = vv[:, None] * depth
        pts = np.stack([xc, yc, -depth], axis=-1) @ d.cam_xmat[cid].reshape(3, 3).T
        pts += d.cam_xpos[cid]
        smap = self.safe_map
        safe = smap.is_safe(pts[..., 0], pts[..., 1])
        on_surface = np.abs(pts[..., 2] - smap.surface_at(pts[..., 0], pts[..., 1])) < 0.15
        return (safe & on_surface).astype(np.uint8)

    def render_camera_image(
        self, camera: str | int, width: int, height: int, mode: str = "rgb"
    ) -> np.ndarray:
        pool = self._pool
        if pool is not None and pool.dirty:
            pool.flush_meshes()  # before a new renderer reads the model's meshes
            pool.upload(self._ensure_renderer().upload_mesh)
        hide = self._never_seen(camera)
        if hide is None:
            return super().render_camera_image(camera, width, height, mode)
        # the quad's own parts the downward camera cannot see: not drawn (each costs as much
        # as a visible geom on llvmpipe, ~15 us of a 64x64 frame); pixels are the same
        m = self.model
        groups = m.geom_group[hide]
        m.geom_group[hide] = self._off_group
        try:
            return super().render_camera_image(camera, width, height, mode)
        finally:
            m.geom_group[hide] = groups

    def _never_seen(self, camera: str | int) -> np.ndarray | None:
        """Drawn primitives on ``camera``'s body (the observation camera's: the quad) that lie
        entirely nearer than its near clipping plane: they cannot touch a pixel in any frame
        while the camera and the geoms keep their model poses and sizes (the key of the
        cache, checked every frame: camera randomization changes them per episode). None:
        nothing to leave out."""
        if camera != self.obs_camera:
            return None
        m = self.model
        ent = self._unseen.get(camera)
        if ent is None or ent[0] is not m:
            ent = self._unseen[camera] = [m, *self._unseen_plan(m, camera), None, None]
        _, cid, cand, views, key, hide = ent
        if cid < 0:
            return None
        groups = self._ensure_renderer().option.geomgroup
        # everything the answer depends on, as bytes of live views (a few us a frame)
        new = (
            b"".join([v.tobytes() for v in views]) + groups.tobytes(),
            m.vis.map.znear,
            m.stat.extent,
        )
        if new != key:
            off = int(groups.argmin())
            hide = None
            if not (groups[off] or m.cam_projection[cid] or m.mat_reflectance.any()):
                # (otherwise: no hidden group, or a case the near-plane test does not cover)
                hide = cand[_inside_near_plane(m, cid, cand)]
                hide = hide if len(hide) else None
                self._off_group = off
            ent[4], ent[5] = new, hide
        return hide

    @staticmethod
    def _unseen_plan(m: mujoco.MjModel, camera: str | int) -> tuple[int, np.ndarray, list]:
        """(camera id or -1 when there is nothing to test, candidate geoms, views of the model
        fields their visibility depends on) for ``_never_seen``."""
        cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if cid < 0 or m.cam_bodyid[cid] == 0:
            return -1, np.zeros(0, np.int64), []
        t = m.geom_type
        prim = (t >= int(mujoco.mjtGeom.mjGEOM_SPHERE)) & (t <= int(mujoco.mjtGeom.mjGEOM_BOX))
        cand = np.flatnonzero(prim & (m.geom_bodyid == m.cam_bodyid[cid]))  # the camera's body
        if not len(cand):
            return -1, cand, []
        lo, hi = int(cand[0]), int(cand[-1]) + 1  # a view over the candidates' rows
        views = [m.cam_pos[cid], m.cam_quat[cid], m.cam_projection[cid : cid + 1]]
        views += [m.geom_pos[lo:hi], m.geom_quat[lo:hi], m.geom_size[lo:hi], m.mat_reflectance]
        return cid, cand, views

    def landing_state(self) -> dict[str, Any]:
        """Privileged state for experts and tests."""
        return {
            "site": self.site,
            "touched_down": self._touched,
            "settle_steps": self._settle,
            "cruise_height": self.city.top + 2.0,
        }


_CORNERS = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)


def _inside_near_plane(m: mujoco.MjModel, cid: int, geoms: np.ndarray) -> np.ndarray:
    """Mask of ``geoms`` (on camera ``cid``'s body) whose bounding box lies entirely nearer
    than the camera's near clipping plane (with a margin far above float32 clipping error):
    OpenGL clips all of them, so they draw no fragment. From the model's body-frame poses,
    which fix their relative pose in every frame."""
    size = np.asarray(m.geom_size[geoms], float)
    t = m.geom_type[geoms] - int(mujoco.mjtGeom.mjGEOM_SPHERE)
    r = size[:, 0]
    half = size.copy()
    half[t == 0] = r[t == 0, None]  # sphere
    cap, cyl = t == 1, t == 3
    half[cap | cyl, 0] = r[cap | cyl]
    half[cap | cyl, 1] = r[cap | cyl]
    half[cap, 2] = size[cap, 1] + r[cap]
    half[cyl, 2] = size[cyl, 1]
    local = _CORNERS[None] * half[:, None, :]
    rot = _quat_mats(np.asarray(m.geom_quat[geoms], float))
    body = np.asarray(m.geom_pos[geoms])[:, None, :] + np.einsum("nij,ncj->nci", rot, local)
    cam_rot = _quat_mats(np.asarray(m.cam_quat[cid : cid + 1], float))[0]
    cam = (body - m.cam_pos[cid]) @ cam_rot  # camera frame: x right, y up, looking along -z
    near = float(m.vis.map.znear) * float(m.stat.extent)
    return np.all(-cam[..., 2] < near * (1.0 - 1e-4), axis=1)
