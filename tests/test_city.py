"""City generator, ground-truth safe map and the MuJoCo primitive pool (RooftopLanding)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace

import cv2
import mujoco
import numpy as np
import pytest

from simenvs.envs.rooftop_landing.city import (
    CLUTTER_KINDS,
    CityParams,
    Prim,
    _box,
    flat_city,
    generate_city,
    validate_city,
)
from simenvs.envs.rooftop_landing.safe_map import (
    SafeMapConfig,
    _sites,
    _sites_labelled,
    compute_safe_map,
    generate_landable_city,
)
from simenvs.envs.rooftop_landing.scene import (
    POOL_BOXES,
    POOL_CYLINDERS,
    POOL_HFIELDS,
    ROOF_TRIS,
    CityPool,
    _quat_mats,
    add_city_pool,
    roof_triangles,
)
from simenvs.robots.quadrotor import Quadrotor, add_quadrotor

CFG = SafeMapConfig()  # racer: 0.2235 m radius, 0.2 m clearance, 4 m^2, 16 deg


# ---------------------------------------------------------------------------------------------
# generator


@pytest.mark.parametrize("density", [0.3, 1.0])
def test_generated_layouts_are_valid(density):
    kinds, roofs, stepped = Counter(), Counter(), 0
    for seed in range(20):
        city, smap = generate_landable_city(seed, clutter_density=density)
        assert validate_city(city) == [], f"seed {seed}"
        assert smap.sites, f"seed {seed} has no safe landing site"
        assert city.count("box") <= POOL_BOXES and city.count("cylinder") <= POOL_CYLINDERS
        assert city.n_sloped <= POOL_HFIELDS
        kinds.update(p.kind for p in city.prims if p.role == "clutter")
        roofs.update(r.kind for r in city.roofs)
        stepped += sum(r.hole is not None for r in city.roofs)
    assert set(kinds) == set(CLUTTER_KINDS), f"clutter kinds never generated: {kinds}"
    assert set(roofs) == {"flat", "shed", "gable", "hip"} and stepped > 0


def test_validate_city_catches_bad_layouts():
    city = flat_city([(-5, -5, 5, 5, 10.0)])
    ac = _box(0.0, 0.0, 10.0, 0.5, 0.5, 0.5, "clutter", "ac_unit", roof=0)
    into = _box(0.6, 0.0, 10.0, 0.5, 0.5, 0.5, "clutter", "ac_unit", roof=0, group=1)
    floating = _box(-3.0, -3.0, 10.4, 0.3, 0.3, 0.3, "clutter", "vent", roof=0, group=2)
    sunk = _box(3.0, 3.0, 9.0, 0.3, 0.3, 0.3, "clutter", "vent", roof=0, group=3)
    assert validate_city(replace(city, prims=city.prims + (ac,))) == []
    errs = validate_city(replace(city, prims=city.prims + (ac, into, floating, sunk)))
    text = " ".join(errs)
    assert "interpenetrates" in text and "floats" in text and text.count("interpenetrates") >= 2


def test_generation_is_deterministic_and_density_controls_clutter():
    a, b = generate_city(7), generate_city(7)
    assert a.prims == b.prims and a.roofs == b.roofs
    assert generate_city(8).prims != a.prims
    assert not [p for p in generate_city(7, clutter_density=0.0).prims if p.role == "clutter"]
    n = lambda d: np.mean(  # noqa: E731
        [sum(p.role == "clutter" for p in generate_city(s, clutter_density=d).prims)
         for s in range(10)]
    )  # fmt: skip
    assert n(1.0) > 1.5 * n(0.3) > 0
    with pytest.raises(ValueError, match="clutter_density"):
        CityParams(clutter_density=1.5)


# ---------------------------------------------------------------------------------------------
# safe map on hand-built layouts


def test_flat_clear_roof_is_safe_and_site_is_its_centre():
    smap = compute_safe_map(flat_city([(-5, -4, 5, 4, 12.0)]), CFG)
    assert bool(smap.is_safe(0.0, 0.0)) and bool(smap.is_safe(2.0, 1.5))
    best = smap.best
    assert abs(best.y) < 0.11 and abs(best.x) <= 1.05  # plateau of the 10 x 8 rectangle
    assert best.radius == pytest.approx(4.0, abs=0.1) and best.z == pytest.approx(12.0)
    # the footprint + 0.2 m must stay on the roof: not safe within 0.42 m of the edge
    assert not smap.is_safe(4.8, 0.0) and not smap.is_safe(0.0, -3.7)
    assert bool(smap.is_safe(4.45, 0.0))
    assert not smap.is_safe(20.0, 0.0)  # street


def test_spot_next_to_ac_unit_is_not_safe():
    ac = _box(2.0, 0.0, 12.0, 0.8, 0.6, 0.7, "clutter", "ac_unit", roof=0)
    smap = compute_safe_map(flat_city([(-6, -6, 6, 6, 12.0)], [ac]), CFG)
    need = CFG.drone_radius + CFG.clearance
    edge = 2.0 - 0.8
    assert not smap.is_safe(2.0, 0.0)  # on it
    assert not smap.is_safe(edge - 0.25, 0.0)  # next to it: footprint within 0.2 m
    assert not smap.is_safe(edge - need + 0.1, 0.0)
    assert bool(smap.is_safe(edge - need - 0.15, 0.0))
    assert np.hypot(smap.best.x - 2.0, smap.best.y) > smap.best.radius  # site avoids the AC
    assert smap.height_at(2.0, 0.0) == pytest.approx(13.4)


def test_steep_roof_is_not_safe_but_a_shallow_one_is():
    rects = [(-6, -5, 6, 5, 10.0)]
    steep = compute_safe_map(flat_city(rects, kinds=["shed"], slopes=[25.0]), CFG)
    assert not steep.safe.any() and not steep.sites
    for kind in ("gable", "hip"):
        assert not compute_safe_map(flat_city(rects, kinds=[kind], slopes=[30.0]), CFG).sites
    shallow = compute_safe_map(flat_city(rects, kinds=["shed"], slopes=[8.0]), CFG)
    assert bool(shallow.is_safe(0.0, 0.0)) and shallow.best.tilt_deg == pytest.approx(8.0)
    # the surface rises along +x at tan(8 deg)
    z0, z1 = shallow.surface_at(-2.0, 0.0), shallow.surface_at(2.0, 0.0)
    assert z1 - z0 == pytest.approx(4 * math.tan(math.radians(8.0)), abs=0.02)


def test_small_roof_has_no_site():
    smap = compute_safe_map(flat_city([(0, 0, 1.8, 1.8, 9.0)]), CFG)  # 3.2 m^2
    assert not smap.sites and not smap.safe.any()
    assert smap.free.any()  # flat and clear, just too small


# the straightforward forms of what compute_safe_map / Roof.surface compute faster: the fast
# paths must give the same bits (pinned rollouts depend on them)


def _reference_surface(roof, x, y):
    x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
    x0, y0, x1, y1 = roof.rect
    t = math.tan(math.radians(roof.slope_deg))
    dist = np.stack([x - x0, y - y0, x1 - x, y1 - y])
    if roof.kind == "shed":
        return roof.z + t * dist[roof.axis], np.zeros(x.shape, np.int32)
    if roof.kind == "gable":
        sides = dist[[1, 3]] if roof.axis == 0 else dist[[0, 2]]
        k = np.argmin(sides, axis=0)
        face = np.where(k == 0, 1, 3) if roof.axis == 0 else np.where(k == 0, 0, 2)
        return roof.z + t * sides.min(0), face.astype(np.int32)
    return roof.z + t * dist.min(0), np.argmin(dist, axis=0).astype(np.int32)


def _reference_obstacles(city, smap):
    """Per-part rasterization: height (roof surface raised by every part over a cell) and
    the obstacle cells."""
    res, (x0, y0) = smap.resolution, smap.origin
    h, w = smap.shape
    xs = (x0 + (np.arange(w) + 0.5) * res).astype(np.float32)
    ys = (y0 + (np.arange(h) + 0.5) * res).astype(np.float32)
    height, blocked = smap.surface.copy(), smap.tilt_deg > smap.config.max_tilt_deg
    for p, lo, hi in zip(city.prims, city.arrays["lo"], city.arrays["hi"]):
        if p.role not in ("clutter", "parapet"):
            continue
        c0, c1 = (int(np.clip(f((v - x0) / res + e), 0, w)) for f, v, e in
                  ((np.floor, lo[0], 1e-9), (np.ceil, hi[0], -1e-9)))  # fmt: skip
        r0, r1 = (int(np.clip(f((v - y0) / res + e), 0, h)) for f, v, e in
                  ((np.floor, lo[1], 1e-9), (np.ceil, hi[1], -1e-9)))  # fmt: skip
        sy, sx = slice(r0, r1), slice(c0, c1)
        hv = height[sy, sx]
        if p.shape == "cylinder":
            dx = np.maximum(np.abs(xs[sx] - np.float64(p.pos[0])) - res / 2, 0.0)
            dy = np.maximum(np.abs(ys[sy] - np.float64(p.pos[1])) - res / 2, 0.0)
            cover = dx[None, :] ** 2 + dy[:, None] ** 2 < np.float64(p.size[0]) ** 2
            blocked[sy, sx] |= cover
            hv[cover] = np.maximum(hv[cover], float(hi[2]))
        else:
            blocked[sy, sx] = True
            np.maximum(hv, float(hi[2]), out=hv)
    return height, blocked


def _reference_sites(smap):
    """Label every landable region, keep those with a clear circle of site_radius, site at
    the middle of the plateau of maxima (ties: label order)."""
    cfg, res = smap.config, smap.resolution
    landable = smap.clearance >= cfg.landable_radius - 1e-6
    n, labels, stats, _ = cv2.connectedComponentsWithStats(landable.view(np.uint8), connectivity=4)
    r_min = max(cfg.site_radius - cfg.landable_radius - 2 * res, 0.0) / res
    safe, found = np.zeros(landable.shape, bool), []
    for k in range(1, n):
        c0, r0, bw, bh, area = stats[k].tolist()
        if area < math.pi * r_min * r_min:
            continue
        box = (slice(r0, r0 + bh), slice(c0, c0 + bw))
        cl = np.where(labels[box] == k, smap.clearance[box], -1.0)
        md = float(cl.max())
        if md < cfg.site_radius - 1e-6:
            continue
        safe |= labels == k
        rr, cc = np.nonzero(cl >= md - res / 2)
        j = int(np.argmin((rr - rr.mean()) ** 2 + (cc - cc.mean()) ** 2))
        found.append((md, r0 + int(rr[j]), c0 + int(cc[j]), area * res * res))
    found.sort(key=lambda t: -t[0])
    return safe, [(float(smap.clearance[r, c]), r, c, a) for _, r, c, a in found]


@pytest.mark.parametrize(
    "config", [CFG, SafeMapConfig(resolution=0.2, min_area=0.5), SafeMapConfig(clearance=0.0)]
)
def test_safe_map_fast_paths_match_the_reference(config):
    n_sites = 0
    for seed, density in zip(range(6), (0.0, 0.4, 1.0, 0.7, 0.2, 1.0)):
        city = generate_city(seed, clutter_density=density)
        smap = compute_safe_map(city, config)
        height, blocked = _reference_obstacles(city, smap)
        assert height.tobytes() == smap.height.tobytes(), seed
        assert np.array_equal(blocked, smap.obstacle), seed
        safe, found = _reference_sites(smap)
        assert np.array_equal(safe, smap.safe), seed
        res, (x0, y0) = smap.resolution, smap.origin
        got = [(s.radius, round((s.y - y0) / res - 0.5), round((s.x - x0) / res - 0.5), s.area)
               for s in smap.sites]  # fmt: skip
        assert got == found[: config.max_sites], seed
        n_sites += len(got)
        for roof in city.roofs:
            x0_, y0_, x1_, y1_ = roof.rect
            gx = np.linspace(x0_, x1_, 37, dtype=np.float32)[None, :]
            gy = np.linspace(y0_, y1_, 29, dtype=np.float32)[:, None]
            pts = np.random.default_rng(seed).uniform(roof.rect[:2], roof.rect[2:], (50, 2))
            for args in ((gx, gy), (pts[:, 0], pts[:, 1])):
                z, f = roof.surface(*args)
                if roof.sloped:
                    z_ref, f_ref = _reference_surface(roof, *args)
                    assert z.tobytes() == z_ref.tobytes() and np.array_equal(f, f_ref), roof
                    assert z.shape == z_ref.shape and f.dtype == f_ref.dtype
    assert n_sites > 10  # the comparison saw real sites


def test_generate_landable_city_clears_clutter_until_a_site_exists():
    # one small, crowded roof: most seeds leave no 4 m^2 clear circle
    crowded = CityParams(block_size=(8.0, 8.0), min_lot=3.0, max_lot=9.0, clutter_density=1.0,
                         group_area=1.5, roof_probs=(1.0, 0.0, 0.0, 0.0, 0.0))  # fmt: skip
    cleared = 0
    for seed in range(4):
        raw = generate_city(seed, crowded)
        city, smap = generate_landable_city(seed, crowded, CFG)
        assert smap.sites and validate_city(city) == []
        if not compute_safe_map(raw, CFG).sites:
            cleared += 1
            kept = {p for p in city.prims}
            assert kept < set(raw.prims)  # only removals, no new clutter
        with pytest.raises(RuntimeError, match="no safe landing site"):
            generate_landable_city(seed, replace(crowded, block_size=(2.2, 2.2), min_lot=2.1,
                                                 max_lot=4.2), CFG)  # fmt: skip
    assert cleared >= 2


# ---------------------------------------------------------------------------------------------
# MuJoCo pool: in-place edits keep collisions exact


def _pool_model():
    spec = mujoco.MjSpec()
    add_city_pool(spec)
    spec.option.enableflags |= mujoco.mjtEnableBit.mjENBL_SLEEP
    add_quadrotor(spec, "racer", pos=[0, 0, 50])
    spec.body("quad").sleep = mujoco.mjtSleepPolicy.mjSLEEP_NEVER
    m = spec.compile()
    return m, mujoco.MjData(m), CityPool(m), Quadrotor(m, "racer")


def _drop(m, d, pool, q, city, xy, z0, refit=True):
    mujoco.mj_resetData(m, d)
    if not refit:  # what in-place edits do without the refit: the compiled BVH goes stale
        pool._refit = lambda model: None
    pool.apply(city, m)
    g = pool.geoms
    d.geom_xpos[g] = m.geom_pos[g]
    d.geom_xmat[g] = _quat_mats(np.asarray(m.geom_quat[g])).reshape(-1, 9)
    q.reset(d, [xy[0], xy[1], z0])
    for _ in range(700):  # slow descent, then motors off
        a = q.hover_action()
        a[0] -= 0.04
        q.write_action(d, a)
        mujoco.mj_step(m, d)
    return float(d.qpos[2])


def test_pool_city_collides_where_the_safe_map_says():
    m, d, pool, q = _pool_model()
    half = q.p.body_height / 2
    for seed in (1, 2):
        city, smap = generate_landable_city(seed)
        for s in smap.sites[:2]:
            z = _drop(m, d, pool, q, city, (s.x, s.y), s.z + 1.0)
            assert z == pytest.approx(s.z + half, abs=0.02), f"seed {seed} site {s}"
        sloped = [r for r in city.roofs if r.sloped]
        if sloped:  # height-field roofs carry the quad too
            r = sloped[0]
            cx, cy = (r.rect[0] + r.rect[2]) / 2, (r.rect[1] + r.rect[3]) / 2
            assert _drop(m, d, pool, q, city, (cx, cy), r.z + r.rise + 1.0) > r.z - 0.1
    m, d, pool, q = _pool_model()  # fresh BVH (every pool geom compiled underground)
    city, smap = generate_landable_city(1)
    s = smap.best
    assert _drop(m, d, pool, q, city, (s.x, s.y), s.z + 1.0, refit=False) < s.z - 1.0


def test_pool_rejects_cities_that_do_not_fit():
    m, _, pool, _ = _pool_model()
    vents = [Prim("cylinder", (0.1 * i - 4, 0, 10.5), (0.04, 0.5, 0.0), "clutter", "vent", 0, i)
             for i in range(POOL_CYLINDERS + 1)]  # fmt: skip
    with pytest.raises(ValueError, match="cylinders"):
        pool.apply(flat_city([(-5, -5, 5, 5, 10.0)], vents), m)


@pytest.mark.parametrize("kind, slope", [("shed", 10.0), ("gable", 30.0), ("hip", 25.0)])
def test_drawn_roof_solids_follow_the_roof_surface(kind, slope):
    for rect in ((0, 0, 12, 8), (0, 0, 7, 11)):
        city = flat_city([(*rect, 10.0)], kinds=[kind], slopes=[slope])
        roof = city.roofs[0]
        tris, uv = roof_triangles(roof)
        assert 0 < len(tris) <= ROOF_TRIS and uv.shape == (len(tris), 3, 2)
        n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        top = n[:, 2] > 1e-9
        # every vertex lies on the surface (top faces) or on the eave / surface (walls)
        z, _ = roof.surface(tris[..., 0], tris[..., 1])
        on = np.isclose(tris[..., 2], z, atol=1e-6) | np.isclose(tris[..., 2], roof.z)
        assert on.all() and np.isclose(tris[top][..., 2], z[top], atol=1e-6).all()
        # face centroids lie on the surface too (planar faces, no surface crossing)
        c = tris[top].mean(axis=1)
        assert np.allclose(c[:, 2], roof.surface(c[:, 0], c[:, 1])[0], atol=1e-6)
        # the top faces cover the footprint exactly once (projected area)
        assert 0.5 * n[top, 2].sum() == pytest.approx((rect[2] - rect[0]) * (rect[3] - rect[1]))
        # outward winding: normals point away from the footprint centre
        cen = np.array([(rect[0] + rect[2]) / 2, (rect[1] + rect[3]) / 2, roof.z])
        assert np.all(np.einsum("ij,ij->i", n, tris.mean(axis=1) - cen) > 0)


def test_pool_writes_the_drawn_meshes_only_when_they_are_needed():
    """``apply`` leaves the material meshes to ``upload`` (state-only episodes never draw):
    the collision pool is written at once, the meshes on the first upload, and the mesh
    geoms sit at the origin from the start (their static poses are copied at reset)."""
    m, _, pool, _ = _pool_model()
    city = generate_city(3)
    verts0 = np.array(m.mesh_vert)
    pool.apply(city, m)
    assert pool.dirty and np.array_equal(m.mesh_vert, verts0)
    assert np.all(m.geom_pos[pool._mesh_geoms] == 0.0)
    n_sloped = sum(r.sloped for r in city.roofs)  # height fields
    assert np.sum(m.geom_contype[pool.geoms] > 0) == len(city.prims) + n_sloped
    uploaded = []
    pool.upload(uploaded.append)
    assert not pool.dirty and uploaded and not np.array_equal(m.mesh_vert, verts0)
    verts1 = np.array(m.mesh_vert)
    pool.apply(generate_city(4), m)
    pool.flush_meshes()
    assert pool.dirty and not np.array_equal(m.mesh_vert, verts1)  # written, not uploaded


@pytest.mark.parametrize("blocks", [15, 17])  # 225 safe regions: flood fills; 289: labelling
def test_many_safe_regions_match_the_labelling_path(blocks):
    # _sites tells regions apart by uint8 fill values and falls back to labelling beyond
    # 254 of them: both paths must give the same sites and safe mask
    cfg = SafeMapConfig(drone_radius=0.05, clearance=0.0, min_area=0.05)
    res = cfg.resolution
    free = np.zeros((6 * blocks + 2, 6 * blocks + 2), bool)
    for i in range(blocks):
        for j in range(blocks):  # 4 x 4 free cells, 2 apart; a few one cell larger
            k = 5 if (i * blocks + j) % 7 == 0 else 4
            free[1 + 6 * i : 1 + 6 * i + k, 1 + 6 * j : 1 + 6 * j + k] = True
    cl = cv2.distanceTransform(free.view(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5) * res
    cl = np.maximum(cl - res / 2, 0.0).astype(np.float32)
    landable = cl >= cfg.landable_radius - 1e-6
    found, safe = _sites(landable, cl, cfg, 3, 5)
    ref_found, ref_safe = _sites_labelled(landable, cl, cfg, 3, 5)
    assert len(found) == blocks * blocks
    assert found == ref_found
    assert np.array_equal(safe, ref_safe)
