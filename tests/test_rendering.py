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
