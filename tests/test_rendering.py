"""SceneRenderer: the offscreen buffer is sized to the viewports rendered, not to offwidth,
and that must not change a single pixel."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from simenvs.core.rendering import SceneRenderer

XML = """
<mujoco>
  <visual><global offwidth="256" offheight="256"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom type="plane" size="2 2 1" rgba=".3 .5 .3 1"/>
    <geom type="box" pos="0 0 .2" size=".2 .2 .2" rgba=".8 .2 .2 1"/>
    <geom type="sphere" pos=".5 .3 .3" size=".15" rgba=".2 .2 .8 1"/>
    <geom type="capsule" pos="-.5 -.3 .3" size=".1 .2" rgba=".9 .9 .1 1"/>
    <camera name="cam" pos="1.5 -1.5 1.2" xyaxes="1 1 0 -.4 .4 1"/>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def scene():
    model = mujoco.MjModel.from_xml_string(XML)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    exact = SceneRenderer(model, 256, 256)
    full = SceneRenderer(model, 256, 256)
    full._resize_buffer(256, 256)  # the old behaviour: a buffer of offwidth x offheight
    yield model, data, exact, full
    exact.close()
    full.close()


@pytest.mark.parametrize("mode", ["rgb", "depth", "segmentation"])
def test_exact_buffer_same_pixels(scene, mode):
    _, data, exact, full = scene
    a = exact.render(data, "cam", 64, 48, mode)
    b = full.render(data, "cam", 64, 48, mode)
    assert a.shape[:2] == (48, 64)
    assert np.unique(a).size > 3  # a real picture, not a cleared buffer
    np.testing.assert_array_equal(a, b)


def test_buffer_grows_to_largest_viewport(scene):
    model, data, _, _ = scene
    r = SceneRenderer(model, 256, 256)
    try:
        small = r.render(data, "cam", 64, 64)
        assert r._fb == (64, 64)
        big = r.render(data, "cam", 128, 96)
        assert r._fb == (128, 96) and big.shape == (96, 128, 3)
        r.render(data, "cam", 100, 40)
        assert r._fb == (128, 96)  # never shrinks: no resize churn when sizes alternate
        np.testing.assert_array_equal(r.render(data, "cam", 64, 64), small)
        with pytest.raises(ValueError, match="exceeds the buffer 256x256"):
            r.render(data, "cam", 300, 64)
    finally:
        r.close()


def _ring_model(n_far: int) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """A camera looking at a box, with ``n_far`` spheres behind it (outside its frustum)
    and a second camera that faces it."""
    far = "".join(
        f'<geom type="sphere" size=".1" pos="{np.cos(a):.3f} {-5 + np.sin(a):.3f} .5"/>'
        for a in np.linspace(0, 2 * np.pi, n_far, endpoint=False)
    )
    xml = f"""<mujoco><worldbody><light pos="0 0 3" dir="0 0 -1"/>
      <geom type="box" size=".3 .3 .3" rgba=".8 .3 .2 1"/>{far}
      <camera name="front" pos="0 -2 .5" xyaxes="1 0 0 0 0 1"/>
      <camera name="back" pos="0 2 .5" xyaxes="-1 0 0 0 0 1"/>
    </worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    return model, data


@pytest.mark.parametrize("n_far, every_frame", [(12, True), (2, False)])
def test_frustum_test_runs_when_it_pays(n_far, every_frame):
    """The frustum test runs every frame while it leaves out enough geoms to pay for itself,
    otherwise 1 frame in 8; images are the same as with no culling at all."""
    model, data = _ring_model(n_far)
    r = SceneRenderer(model, 64, 64)
    plain = SceneRenderer(model, 64, 64)
    plain._outside_frustum = lambda *args: None
    calls = []
    test = r._outside_frustum

    def counted(*args):
        calls.append(test(*args))
        return calls[-1]

    r._outside_frustum = counted
    try:
        for _ in range(16):
            np.testing.assert_array_equal(
                r.render(data, "front", 64, 64), plain.render(data, "front", 64, 64)
            )
        assert all(c is not None and len(c) == n_far for c in calls)
        assert len(calls) == (16 if every_frame else 2)
    finally:
        r.close()
        plain.close()


def test_camera_switches_and_model_swaps():
    """The fixed camera set up last frame is reused only for the same camera and model."""
    model, data = _ring_model(4)
    r = SceneRenderer(model, 64, 64)
    try:
        front, back = r.render(data, "front", 64, 64), r.render(data, "back", 64, 64)
        assert not np.array_equal(front, back)
        np.testing.assert_array_equal(r.render(data, 0, 64, 64), front)
        np.testing.assert_array_equal(r.render(data, "front", 64, 64), front)
        np.testing.assert_array_equal(r.render(data, 1, 64, 64), back)
        # a new model whose camera 0 is the old camera 1: names resolve afresh
        xml = """<mujoco><worldbody><light pos="0 0 3" dir="0 0 -1"/>
          <geom type="box" size=".3 .3 .3" rgba=".8 .3 .2 1"/>
          <camera name="front" pos="0 5 .5" xyaxes="-1 0 0 0 0 1"/></worldbody></mujoco>"""
        m2 = mujoco.MjModel.from_xml_string(xml)
        d2 = mujoco.MjData(m2)
        mujoco.mj_forward(m2, d2)
        r.set_model(m2)
        swapped = r.render(d2, "front", 64, 64)
        assert not np.array_equal(swapped, front)
        with pytest.raises(ValueError, match="unknown camera 'back'"):
            r.render(d2, "back", 64, 64)
    finally:
        r.close()


def test_mesh_bounds_follow_uploads():
    """Culling caches mesh bounds; ``upload_mesh`` after an in-place vertex edit refreshes
    them, so a mesh grown into view is drawn (the cached bound would leave it out)."""
    xml = """<mujoco><asset><mesh name="m" vertex="-.1 -.1 -.1  .1 -.1 -.1  0 .1 -.1  0 0 .1"/>
      </asset><worldbody><light pos="0 -3 3" dir="0 1 -1"/>
      <geom type="box" size=".2 .2 .2" rgba=".2 .3 .8 1"/>
      <geom type="mesh" mesh="m" pos="1.6 0 0" rgba=".9 .9 .1 1"/>
      <camera name="c" pos="0 -3 0" xyaxes="1 0 0 0 0 1" fovy="45"/></worldbody></mujoco>"""
    model = mujoco.MjModel.from_xml_string(xml)
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    r = SceneRenderer(model, 64, 64)
    plain = SceneRenderer(model, 64, 64)
    plain._outside_frustum = lambda *args: None
    try:
        before = r.render(data, "c", 64, 64)
        out = r._outside_frustum(data, r._cam_id, 64, 64)
        assert out is not None and 1 in out  # the small mesh is out of view
        model.mesh_vert[:] *= 10.0  # now it reaches into the view
        for rend in (r, plain):
            rend.upload_mesh(0)
        r._cull_wait = 0
        after = r.render(data, "c", 64, 64)
        np.testing.assert_array_equal(after, plain.render(data, "c", 64, 64))
        assert not np.array_equal(after, before)
    finally:
        r.close()
        plain.close()


def test_hidden_distractors_leave_the_scene():
    """Distractors beyond the episode's count are parked in a hidden group (no draw call);
    visible ones keep their own group."""
    from simenvs.core.scene import add_distractors
    from simenvs.randomization.appearance import Distractors

    spec = mujoco.MjSpec()
    spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1])
    spec.worldbody.add_camera(name="c", pos=[0, -3, 1], xyaxes=[1, 0, 0, 0, 0.3, 1])
    add_distractors(spec, 3, center=[0, 0, 1], half_extent=[0.5, 0.5, 0.5])
    model = spec.compile()
    data = mujoco.MjData(model)
    dist = Distractors(model)
    dist.apply(
        model, data, {"appearance.distractors.count": 1, "appearance.distractor.0.vel": [1, 0, 0]}
    )
    mujoco.mj_forward(model, data)
    assert model.geom_group[dist.geoms].tolist() == [1, 5, 5]
    r = SceneRenderer(model, 64, 64)
    try:
        r.render(data, "c", 64, 64)
        drawn = {g.objid for g in r.scene.geoms[: r.scene.ngeom]}
        assert int(dist.geoms[0]) in drawn and not drawn & set(dist.geoms[1:].tolist())
        before = data.mocap_pos.copy()
        dist.advance(data, 0.1)  # the visible one moves, the parked ones stay put
        assert data.mocap_pos[0, 0] == pytest.approx(before[0, 0] + 0.1)
        np.testing.assert_array_equal(data.mocap_pos[1:], before[1:])
        assert before[1:, 2].max() < -100
        dist.apply(model, data, {"appearance.distractors.count": 3})
        assert model.geom_group[dist.geoms].tolist() == [1, 1, 1]
    finally:
        r.close()


def test_sensor_blur_skip_is_exact():
    """Below ``_BLUR_IDENTITY_SIGMA`` OpenCV's 8-bit Gaussian blur returns its input, so
    skipping it changes nothing (worst case: one dark pixel among bright ones); above it the
    blur changes pixels and is applied."""
    import cv2

    from simenvs.randomization.sensor import _BLUR_IDENTITY_SIGMA, apply_image_noise

    worst = np.full((9, 9, 3), 255, np.uint8)
    worst[4, 4] = 0
    rand = np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)
    for img in (worst, 255 - worst, rand):
        np.testing.assert_array_equal(cv2.GaussianBlur(img, (0, 0), _BLUR_IDENTITY_SIGMA), img)
    rng = np.random.default_rng(0)
    out = apply_image_noise(rand, {"sensor.image.blur_sigma": _BLUR_IDENTITY_SIGMA + 0.05}, rng)
    assert not np.array_equal(out, rand)
    np.testing.assert_array_equal(out, cv2.GaussianBlur(rand, (0, 0), _BLUR_IDENTITY_SIGMA + 0.05))
    same = apply_image_noise(rand, {"sensor.image.blur_sigma": 0.2}, rng)
    np.testing.assert_array_equal(same, rand)
    assert same is not rand


def test_sensor_plan_accepts_array_values():
    """Parameter overrides given as 0-d arrays (unhashable) work like floats."""
    from simenvs.randomization.sensor import apply_image_noise

    img = np.random.default_rng(1).integers(0, 256, (32, 32, 3), np.uint8)
    a = apply_image_noise(img, {"sensor.image.contrast": np.array(1.3)}, None)
    b = apply_image_noise(img, {"sensor.image.contrast": 1.3}, None)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, img)
