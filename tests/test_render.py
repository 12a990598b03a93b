"""The figure-rendering entry point on a tiny trained run (max_offset 2, 8^3 scenes, C = 2)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from temporal_nsr.atomic import FolderError
from temporal_nsr.config import compose_config
from temporal_nsr.figures import mp4_available
from temporal_nsr.image_input import ImageError
from temporal_nsr.render import RenderError, render

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
    with Image.open(out / "slots.png") as slots:
        assert slots.size == (6 * 34 + 2, 36)  # input + 5 slots of 32 px, 2 px gaps


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
    assert f"checkpoint {checkpoint} (step " in caplog.text
    assert "device cpu, precision float32" in caplog.text
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


def test_render_never_replaces_what_it_did_not_write(tiny_run: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    with pytest.raises(FolderError, match=r"mine holds files .*no render.json.*force=true"):
        render(_cfg(tiny_run, tmp_path, out_dir=mine))
    assert (mine / "notes.txt").read_text() == "keep"
    written = render(_cfg(tiny_run, tmp_path, out_dir=tmp_path / "figs"))
    assert (tmp_path / "figs" / "render.json").is_file() and written[0].is_file()
    render(_cfg(tiny_run, tmp_path, out_dir=tmp_path / "figs"))  # its own folder: replaced
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
