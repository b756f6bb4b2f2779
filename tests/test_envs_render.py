"""Rendering of the robot tasks: the backend doctor, frames, pixel observations, video files.

Tests that draw frames are skipped — with doctor()'s message as the reason — only when no
OpenGL backend works here; in CI EGL is installed (``.ci/run``) and they must run.
Frames are kept tiny and few (software rendering runs at tens of frames per second).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import mbc_lib.envs as E
from mbc_lib.control import ChunkExecutor

PATH, PUSH = "mbc/PathGaps-v0", "mbc/PushBins-v0"


@pytest.fixture(scope="module")
def backend() -> str:
    doc = E.doctor()
    if not doc.ok:
        pytest.skip(f"no MuJoCo rendering backend: {doc.message}")
    return doc.backend


def test_doctor_returns_a_result_and_never_raises():
    doc = E.doctor()
    assert isinstance(doc, E.RenderDoctor) and isinstance(doc.message, str) and doc.message
    assert doc.backend is None or isinstance(doc.backend, str)
    assert (doc.backend is not None) == doc.ok
    assert E.doctor() is doc  # cached; refresh=True checks again
    assert E.doctor(refresh=True).ok == doc.ok


def test_render_mode_frames_show_the_scene(backend):
    env = E.make(PATH, render_mode="rgb_array", render_size=(48, 64))
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
    assert frame.std() > 5, "a blank frame: camera or lights are wrong"
    for _ in range(10):
        env.step(np.array([0.5, 0.0]))
    assert not np.array_equal(env.render(), frame), "moving the effector must change the picture"
    env.close()
    assert E.make(PATH).render() is None  # no render_mode -> no frames (gymnasium convention)


def test_pixel_observations(backend):
    env = E.make(PUSH, obs_type="pixels", image_size=32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8 and env.observation_space.contains(obs)
    ds = E.collect_demos(PUSH, 1, seed=0, chunk_len=4, obs_type="pixels", image_size=16, max_steps=3,
                         successful_only=False)  # fmt: skip
    assert ds.obs.shape == (3, 3 * 16 * 16) and 0.0 <= float(ds.obs.min()) and float(ds.obs.max()) <= 1.0
    seen = []

    def policy(obs):  # records what it sees; image policies reshape to [B, 3, S, S]
        seen.append(obs.view(len(obs), 3, 16, 16))
        return torch.zeros(len(obs), 1, 2)

    E.evaluate(policy, PUSH, 2, executor=ChunkExecutor(1), obs_type="pixels", image_size=16, max_steps=2)
    assert seen[0].shape == (2, 3, 16, 16)


def test_render_trajectory_tile_and_video_files(backend, tmp_path):
    _, trajs = E.collect_demos(PATH, 2, seed=0, return_trajectories=True)
    videos = [E.render_trajectory(PATH, t.qpos[::20], 32, 48) for t in trajs]
    assert videos[0].shape == (len(trajs[0].qpos[::20]), 32, 48, 3)
    grid = E.tile_videos(videos, ncols=2, pad=2)
    assert grid.shape == (max(map(len, videos)), 34, 100, 3)
    import imageio.v3 as iio

    for suffix in (".mp4", ".gif") if E.mp4_available() else (".gif",):  # mp4 needs imageio-ffmpeg
        path = E.save_video(grid, tmp_path / f"demo{suffix}", fps=10)
        back = iio.imread(path)  # all frames
        assert back.shape[0] == len(grid) and back.shape[1:3] == grid.shape[1:3]
    with pytest.raises(ValueError, match="mp4 or .gif"):
        E.save_video(grid, tmp_path / "demo.avi")
    with pytest.raises(ValueError, match="qpos"):
        E.render_trajectory(PATH, np.zeros((3, 5)))


def test_show_video_falls_back_to_gif_without_ffmpeg(monkeypatch):
    import base64
    import io

    import imageio.v3 as iio

    import mbc_lib.envs.render as R

    frames = np.zeros((3, 8, 10, 3), np.uint8)
    frames[1, :, :5] = 255
    if R.mp4_available():
        assert "video/mp4" in E.show_video(frames).data
    monkeypatch.setattr(R, "mp4_available", lambda: False)  # as without imageio-ffmpeg
    with pytest.warns(UserWarning, match="imageio-ffmpeg"):
        html = E.show_video(frames, fps=5).data
    assert html.startswith('<img src="data:image/gif;base64,')
    back = iio.imread(io.BytesIO(base64.b64decode(html.split("base64,")[1].split('"')[0])), extension=".gif")
    assert back.shape[:3] == (3, 8, 10) and back[1, 0, 0, 0] == 255 and back[0, 0, 0, 0] == 0


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.environ.get("DISPLAY"), reason="needs headless Linux")
def test_missing_backend_gives_a_clear_message_not_a_crash():
    # MUJOCO_GL=glfw without a display cannot render: doctor() must say so (and name a backend
    # that works in a fresh process, if any), and rendering must raise a RuntimeError that says what to do.
    code = (
        "import json, mbc_lib.envs as E\n"
        "doc = E.doctor()\n"
        "try:\n"
        "    E.render_trajectory('mbc/PathGaps-v0', E.make_env_task('mbc/PathGaps-v0').initial_qpos(__import__('numpy').random.default_rng(0))[None], 8, 8)\n"
        "    err = None\n"
        "except RuntimeError as e:\n"
        "    err = str(e)\n"
        "print(json.dumps({'backend': doc.backend, 'message': doc.message, 'elsewhere': doc.elsewhere, 'err': err}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "PYOPENGL_PLATFORM")}
    env["MUJOCO_GL"] = "glfw"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["backend"] is None
    assert "cannot render" in res["message"]
    assert res["err"] is not None and "MUJOCO_GL" in res["err"]
    if res["elsewhere"]:
        assert f"MUJOCO_GL={res['elsewhere'][0]}" in res["message"]
    else:
        assert "apt-get install" in res["message"]
