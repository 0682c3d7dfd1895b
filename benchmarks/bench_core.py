"""Rendering and reset-randomization cost of the shared base (issue: foundation).

Prints and writes benchmarks/results/core.json:
- frames/s of the observation camera at 64x64 and 128x128 (fast render settings);
- ms a reset spends sampling and applying appearance + dynamics randomization, on a scene
  with 10 textured geoms, excluding scene generation (the task's layout);
- ms to regenerate and upload all 10 textures (done lazily, before the first render);
- CPU time of a 64x64 frame in an offscreen buffer of its own size (what ``SceneRenderer``
  does) over one of offwidth x offheight (256x256), interleaved, median of rounds;
- CPU time of a DroneRace 64x64 observation frame with llvmpipe rasterizing in the calling
  thread (``LP_NUM_THREADS=0``, what ``simenvs.core.rendering`` sets) over its default worker
  threads, in alternating fresh processes (the setting is read once per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
from _common import rate, write

from simenvs.core.example import ToyPushEnv
from simenvs.core.rendering import SceneRenderer


def buffer_size_ratio(env, rounds: int = 10, frames: int = 100) -> float:
    """CPU time per 64x64 frame, exact-size buffer / 256x256 buffer (< 1: the exact one is
    cheaper). Two renderers of the same model, alternated so load hits both alike."""
    exact, full = SceneRenderer(env.model, 256, 256), SceneRenderer(env.model, 256, 256)
    full._resize_buffer(256, 256)
    times: dict[str, list[float]] = {"exact": [], "full": []}
    try:
        for i in range(rounds):
            for name in ("exact", "full") if i % 2 else ("full", "exact"):
                r = exact if name == "exact" else full
                r.render(env.data, "top", 64, 64)
                t0 = time.process_time()
                for _ in range(frames):
                    r.render(env.data, "top", 64, 64)
                times[name].append(time.process_time() - t0)
    finally:
        exact.close()
        full.close()
    return float(np.median(times["exact"]) / np.median(times["full"]))


_FRAME_CPU = """
import time, gymnasium as gym, simenvs
env = gym.make("simenvs/DroneRace-v0", obs_mode="rgb", randomization="default")
env.reset(seed=0)
u = env.unwrapped
h, w = u.image_size
for _ in range(50):
    u.render_camera_image(u.obs_camera, w, h)
t0 = time.process_time()
for _ in range(1000):
    u.render_camera_image(u.obs_camera, w, h)
print((time.process_time() - t0) / 1000)
"""


def lp_threads_ratio(rounds: int = 6) -> float:
    """CPU time per DroneRace 64x64 frame, LP_NUM_THREADS=0 / llvmpipe's default (one worker
    per core); < 1: rasterizing in the calling thread is cheaper."""
    times: dict[str, list[float]] = {"0": [], str(os.cpu_count() or 1): []}
    for i in range(rounds):
        for n in list(times) if i % 2 else list(times)[::-1]:
            out = subprocess.run(
                [sys.executable, "-c", _FRAME_CPU],
                env={**os.environ, "LP_NUM_THREADS": n},
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            times[n].append(float(out.stdout.split()[-1]))
    zero, default = (float(np.median(v)) for v in times.values())
    return zero / default


def main() -> None:
    env = ToyPushEnv(obs_mode="state", n_textures=10, width=128, height=128)
    env.reset(seed=0)
    n_tex = len(env._textures.slots)
    results: dict = {"textured_geoms": n_tex}
    for size in (64, 128):
        fps = rate(lambda s=size: env.render_camera_image("top", s, s, "rgb"), 1.0)
        results[f"render_fps_{size}"] = fps
        print(f"render {size}x{size}: {fps:,.0f} frames/s")

    ratio = buffer_size_ratio(env)
    results["render_64_exact_over_256_buffer_cpu"] = ratio
    print(f"64x64 frame, exact-size buffer / 256x256 buffer (CPU time): {ratio:.3f}")
    lp = lp_threads_ratio()
    results["render_64_lp_threads_0_over_default_cpu"] = lp
    print(f"DroneRace 64x64 frame, LP_NUM_THREADS=0 / default threads (CPU time): {lp:.3f}")

    # reset split: total, the layout part (task.reset_task + mj_forward) measured separately
    streams_sample, apply_ms = [], []
    for _ in range(300):
        t0 = time.perf_counter()
        params = env._bound.sample(env.streams)
        t1 = time.perf_counter()
        for p in env._registry:
            if p.apply is not None:
                p.apply(env.model, params[p.name])
        env._distractors.apply(env.model, env.data, params)
        t2 = time.perf_counter()
        streams_sample.append(t1 - t0)
        apply_ms.append(t2 - t1)
    sample = 1e3 * float(np.median(streams_sample))
    apply = 1e3 * float(np.median(apply_ms))
    results["randomization_sample_ms"] = sample
    results["randomization_apply_ms"] = apply
    results["randomization_total_ms"] = sample + apply
    print(
        f"reset randomization: sample {sample:.3f} ms + apply {apply:.3f} ms "
        f"= {sample + apply:.3f} ms (target <= 2 ms)"
    )
    reset_rate = rate(lambda: env.reset(), 1.0)
    results["reset_ms_state_obs"] = 1e3 / reset_rate
    print(f"full reset (state obs): {1e3 / reset_rate:.3f} ms")

    def textures():
        env.reset()
        env._textures.refresh(env.params, env._ensure_renderer().upload_texture)

    t = rate(textures, 1.0) and None
    tex_ms = 1e3 / rate(textures, 1.0) - 1e3 / reset_rate
    results["texture_regen_upload_ms"] = tex_ms
    print(f"regenerate + upload {n_tex} textures (lazy, before a render): {tex_ms:.2f} ms")
    del t
    env.close()
    write("core", results)


if __name__ == "__main__":
    main()
