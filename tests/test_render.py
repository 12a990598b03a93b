"""The figure-rendering entry point on a tiny trained run (max_offset 2, 8^3 scenes, C = 2)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from temporal_nsr.atomic import FolderError
from temporal_nsr.camera_path import CameraPathError, load_camera_path
from temporal_nsr.config import CONF_DIR, compose_config
from temporal_nsr.image_input import ImageError
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.pictures import mp4_available
from temporal_nsr.render import RenderError, render
from temporal_nsr.runs import run_datamodule

REPO = Path(__file__).resolve().parents[1]
FPS = 10  # 100 ms per frame: a whole number of GIF centiseconds


def _cfg(run_dir: Path, tmp_path: Path, **extra):
    overrides = [f"run_dir={run_dir}", "device=cpu", f"fps={FPS}", "turntable_views=6",
                 "interpolation_steps=1", f"hydra.run.dir={tmp_path}/hydra"]  # fmt: skip
    return compose_config(overrides + [f"{k}={v}" for k, v in extra.items()], "render")


def _gif(path: Path) -> tuple[int, int]:
    """Frames stored and total duration in ms (Pillow merges identical consecutive frames)."""
    with Image.open(path) as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
        return gif.n_frames, sum(durations)


def test_every_figure_is_written(tiny_run: Path, tmp_path: Path) -> None:
    written = render(_cfg(tiny_run, tmp_path))  # image=null: the first test image
    out = tiny_run / "render" / "test_bar_000_00000"
    animations = ("interpolation", "latent_slices", "turntable", "novel_animation")
    names = {"slots.png", "interpolation.png", "latent_slices.png", "turntable.png"}
    names |= {f"{a}.gif" for a in animations}
    names |= {f"{a}.mp4" for a in animations} if mp4_available() else set()
    assert {p.name for p in written} == names
    assert all(p.parent == out and p.stat().st_size > 0 for p in written)
    # max_offset 2, 1 step between slots: 2 * 2 * 2 + 1 interpolation frames, 5 slots.
    frames = {"interpolation": 9, "latent_slices": 5, "turntable": 6, "novel_animation": 16}
    for name, count in frames.items():
        stored, duration = _gif(out / f"{name}.gif")
        assert duration == count * 1000 // FPS, name
        assert stored <= count
    assert _gif(out / "turntable.gif")[0] == 6  # 60 degrees apart: no two frames alike
    with Image.open(out / "slots.png") as slots:  # ONE row: input + 5 slots, 2 px gaps,
        assert slots.size[0] == 6 * 66 + 2  # enlarged to 64 px, a dt label under each
        assert 64 + 4 < slots.size[1] < 64 + 4 + 30
    with Image.open(out / "turntable.gif") as gif:
        assert gif.size == (256, 256)  # video_size: enlarged for display


def test_image_path_and_out_dir_and_what_was_used_is_logged(
    tiny_run: Path, tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    png = sorted((tiny_data / "val").glob("*/*.png"))[0]
    image = tmp_path / "bar.png"
    Image.open(png).convert("RGBA").save(image)
    with caplog.at_level(logging.INFO):
        written = render(_cfg(tiny_run, tmp_path, image=image, out_dir=tmp_path / "figs"))
    assert {p.parent for p in written} == {tmp_path / "figs"}
    checkpoint = tiny_run / "checkpoints" / "last.ckpt"  # "best": none saved by the tiny run
    # One line per load: the file, its step, the device and the precision.
    loaded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("loaded ")]
    assert loaded == [f"loaded {checkpoint} (global step 8) on cpu, weights float32"]
    assert f"input image: {image}" in caplog.text


def test_bad_inputs_are_one_line_errors(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        render(_cfg(tiny_run, tmp_path, image=tmp_path / "nope.png"))
    with pytest.raises(RenderError, match="turntable_dt=3"):
        render(_cfg(tiny_run, tmp_path, turntable_dt=3))
    big = tmp_path / "big.png"
    Image.new("1", (4097, 4096)).save(big)  # a few kB on disk, 16.8 M pixels
    with pytest.raises(ImageError, match=r"big.png is 4097x4096 px, more than the 16777216 px"):
        render(_cfg(tiny_run, tmp_path, image=big))
    with pytest.raises(ImageError, match=r"raise image_limits.max_bytes"):
        render(_cfg(tiny_run, tmp_path, image=big, **{"image_limits.max_bytes": 100}))
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    # The command line: one line on stderr, exit status 1, no traceback.
    argv = ["-m", "temporal_nsr.render", f"run_dir={tiny_run}", f"image={text}",
            f"hydra.run.dir={tmp_path}/h"]  # fmt: skip
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == f"render: {text} is not a readable image (UnidentifiedImageError)"


def test_one_ckpt_file_renders_alone_from_another_folder(
    tiny_run: Path, tmp_path: Path, png: Path
) -> None:
    """A .ckpt stores its run's config: the file alone, without its run folder, renders from
    any folder, the same view as the run folder gives."""
    alone = tmp_path / "shared" / "model.ckpt"
    alone.parent.mkdir()
    alone.write_bytes((tiny_run / "checkpoints" / "last.ckpt").read_bytes())
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    argv = ["-m", "temporal_nsr.render", f"ckpt={alone}", f"image={png}", "device=cpu",
            "figures=false", "azimuth=30", "dt=1", f"hydra.run.dir={tmp_path}/h"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's package, from elsewhere
    done = subprocess.run(
        [sys.executable, *argv], cwd=elsewhere, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (view,) = [Path(line) for line in done.stdout.splitlines() if Path(line).is_file()]
    assert view.name == "view_az30_el0_dt1.png" and view.is_relative_to(tmp_path / "h")
    run = render(_cfg(tiny_run, tmp_path, image=png, figures=False, azimuth=30, dt=1))
    assert np.array_equal(np.asarray(Image.open(view)), np.asarray(Image.open(run[0])))


def test_render_never_replaces_what_it_did_not_write(
    tiny_run: Path, tmp_path: Path, png: Path
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    # one named image with out_dir: out_dir itself is its folder
    with pytest.raises(FolderError, match=r"mine holds files .*no render.json.*force=true"):
        render(_cfg(tiny_run, tmp_path, out_dir=mine, image=png))
    assert (mine / "notes.txt").read_text() == "keep"
    written = render(_cfg(tiny_run, tmp_path, out_dir=tmp_path / "figs", image=png))
    assert (tmp_path / "figs" / "render.json").is_file() and written[0].is_file()
    render(_cfg(tiny_run, tmp_path, out_dir=tmp_path / "figs", image=png))  # its own: replaced
    # the run's own image into a folder per input under out_dir: the user's files stay
    render(_cfg(tiny_run, tmp_path, out_dir=mine))
    assert (mine / "notes.txt").read_text() == "keep"
    with pytest.raises(FolderError, match="overlaps the run folder"):
        render(_cfg(tiny_run, tmp_path, out_dir=tiny_run))


def test_render_does_not_follow_a_link_out_of_the_run(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_bytes((tiny_run / ".hydra/config.yaml").read_bytes())
    (run / "checkpoints").symlink_to(tiny_run / "checkpoints")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "render").symlink_to(elsewhere)
    with pytest.raises(FolderError, match="leads outside .*symbolic link"):
        render(_cfg(run, tmp_path))
    assert list(elsewhere.iterdir()) == []


def test_a_thin_image_is_refused_from_its_header(tiny_run: Path, tmp_path: Path) -> None:
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1, 14000), "white").save(strip)  # 108 bytes; 2.8 GB once padded square
    with pytest.raises(ImageError, match=r"^strip.png is 1x14000 px, a side longer than the 4096"):
        render(_cfg(tiny_run, tmp_path, image=strip))


def test_camera_path_frames_are_the_render_views_poses(tiny_run: Path, tmp_path: Path) -> None:
    """A keyframed absolute path: frame count from seconds x fps, each frame the network's
    render_views at the interpolated absolute pose, from the source pose."""
    spec = {"poses": "absolute", "source_pose": [30, 15], "fps": 4, "keyframes": [
        {"time": 0, "azimuth": 30, "elevation": 15, "dt": -2},
        {"time": 1, "azimuth": 90, "elevation": 35, "dt": 0},
        {"frame": 6, "azimuth": 120, "elevation": 35, "dt": 1.5}]}  # fmt: skip
    file = tmp_path / "sweep.json"
    file.write_text(json.dumps(spec))
    path = load_camera_path(file)
    assert len(path) == 7  # frames 0..6; keyframes at 0, 4, 6
    assert path.azimuth.tolist() == pytest.approx([30, 45, 60, 75, 90, 105, 120])
    assert path.elevation.tolist() == pytest.approx([15, 20, 25, 30, 35, 35, 35])
    assert path.dt.tolist() == pytest.approx([-2, -1.5, -1, -0.5, 0, 0.75, 1.5])
    renderer = NovelViewRenderer.from_run(tiny_run, device="cpu")
    png = sorted((Path(renderer.config.data.root) / "test").glob("*/*.png"))[0]
    latent = renderer.encode(png)
    frames = renderer.render_path(latent, path)
    poses = torch.stack([path.azimuth, path.elevation], -1)
    with torch.inference_mode():
        expected = renderer.renderer.render_views(
            latent[0], torch.tensor([30.0, 15.0]), poses, path.dt
        )
    assert torch.allclose(frames, expected.clamp(0, 1), atol=1e-6)
    # Relative (the default) is the same rotation from the input camera at (0, 0).
    relative = renderer.render(latent, 0.0, 0.0, -2)
    assert torch.allclose(frames[0], relative[0], atol=1e-6)  # source pose == first pose

    written = render(_cfg(tiny_run, tmp_path, image=png, out_dir=tmp_path / "out",
                          figures=False, camera_path=file, path_formats="[gif,png]"))  # fmt: skip
    assert _gif(tmp_path / "out" / "sweep.gif") == (7, 7 * 1000 // 4)
    pngs = sorted((tmp_path / "out" / "sweep_frames").glob("*.png"))
    assert len(pngs) == 7 and set(pngs) <= set(written)
    with Image.open(pngs[4]) as frame:
        assert np.array_equal(np.asarray(frame), NovelViewRenderer.to_pil(expected[4])[0])


def test_built_in_paths_and_bad_paths(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    stem = out / "test_bar_000_00000"
    render(_cfg(tiny_run, tmp_path, out_dir=out, figures=False, camera_path="time_sweep",
                path_formats="[gif]"))  # fmt: skip
    assert _gif(stem / "time_sweep.gif")[1] == 9 * 100  # 2 * 2 * 2 + 1 offsets at 10 fps
    # a render replaces its input's folder whole (render.json marks it as render's own)
    render(_cfg(tiny_run, tmp_path, out_dir=out, figures=False, camera_path="orbit",
                path_formats="[gif]"))  # fmt: skip
    assert _gif(stem / "orbit.gif")[0] == 6  # turntable_views
    assert not (stem / "time_sweep.gif").exists() and (stem / "render.json").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"keyframes": [{"time": 0, "azimuth": 0, "tilt": 3}]}))
    with pytest.raises(CameraPathError, match="unknown key 'tilt'; valid keys: azimuth, dt"):
        render(_cfg(tiny_run, tmp_path, camera_path=bad, figures=False))
    far = tmp_path / "far.json"
    far.write_text(json.dumps({"keyframes": [{"frame": 0, "dt": 0}, {"frame": 3, "dt": 5}]}))
    with pytest.raises(CameraPathError, match="dt reaches 5 but .* <= 2"):
        render(_cfg(tiny_run, tmp_path, camera_path=far, figures=False))
    absolute = tmp_path / "absolute.json"
    absolute.write_text(json.dumps({"poses": "absolute", "keyframes": [{"frame": 0}]}))
    path = load_camera_path(absolute)
    renderer = NovelViewRenderer.from_run(tiny_run, device="cpu")
    with pytest.raises(CameraPathError, match="source_pose"):
        renderer.render_path(torch.zeros(5, 2, 8, 8, 8), path)
    assert len(load_camera_path(CONF_DIR / "camera_paths" / "orbit_and_back.json")) == 49


def test_folder_glob_and_list_inputs_each_get_a_folder(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    shots = tmp_path / "shots"
    shots.mkdir()
    for png in sorted((tiny_data / "val").glob("*/*.png"))[:2]:
        (shots / f"{png.parent.name}_{png.name}").write_bytes(png.read_bytes())
    names = sorted(p.stem for p in shots.iterdir())
    options = {"figures": False, "azimuth": "[0,90]", "elevation": 20, "dt": 1}
    for spec in (shots, f"{shots}/*.png", f"[{','.join(str(p) for p in sorted(shots.iterdir()))}]"):
        out = tmp_path / "out" / str(abs(hash(str(spec))))
        written = render(_cfg(tiny_run, tmp_path, image=spec, out_dir=out, **options))
        assert sorted(p.parent.name for p in written) == sorted(names * 2)
        assert {p.name for p in written} == {"view_az0_el20_dt1.png", "view_az90_el20_dt1.png"}
    with pytest.raises(ImageError, match="holds no images"):
        render(_cfg(tiny_run, tmp_path, image=tmp_path / "out", **options))
    with pytest.raises(ImageError, match="no image file matches"):
        render(_cfg(tiny_run, tmp_path, image=f"{shots}/*.jpg", **options))


def test_absolute_views_match_render_views(tiny_run: Path, tmp_path: Path) -> None:
    """poses=absolute with the test image's dataset pose (image=null) as the source."""
    renderer = NovelViewRenderer.from_run(tiny_run, device="cpu")
    views = run_datamodule(renderer.config).split("test")
    source = views.pose[0]
    written = render(_cfg(tiny_run, tmp_path, out_dir=tmp_path / "o", figures=False,
                          poses="absolute", azimuth=100, elevation=30, dt=0))  # fmt: skip
    latent = renderer.encode(views.image(0))
    with torch.inference_mode():
        expected = renderer.renderer.render_views(
            latent[0], torch.as_tensor(source).float(), torch.tensor([[100.0, 30.0]]),
            torch.zeros(1, dtype=torch.long),
        )  # fmt: skip
    with Image.open(written[0]) as image:
        assert np.array_equal(np.asarray(image), NovelViewRenderer.to_pil(expected)[0])
