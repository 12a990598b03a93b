"""The interactive viewer on a tiny trained run: the session API, the served app, a browser."""

from __future__ import annotations

import gc
import io
import logging
import os
import shutil
import subprocess
import sys
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from temporal_nsr.config import compose_config
from temporal_nsr.data.images import ImageLimits
from temporal_nsr.image_input import ImageError, ImageTooLargeError
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.pictures import to_uint8
from temporal_nsr.runs import CheckpointError
from temporal_nsr.viewer import (
    EXAMPLES,
    EXAMPLES_DIR,
    SessionPool,
    ViewerError,
    ViewerSession,
    build_app,
    find_examples,
    prune_exports,
    viewer,
    write_examples,
)
from temporal_nsr.viewer.app import next_dt
from temporal_nsr.viewer.server import reachable_url

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")
# The flags the viewer issue asks for, plus no QUIC; a fresh --user-data-dir per test.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
START_TIMEOUT_S = 180  # a loaded 2-core machine imports gradio + torch slowly
SERVER_MAX_BYTES = 2_000_000  # the served viewer's image_limits.max_bytes (default 32 MB)


def _expected(renderer: NovelViewRenderer, image: Path, az: float, el: float, dt: float):
    """The inference API's render of one pose, as the viewer must show it: (S, S, 3) uint8."""
    return to_uint8(renderer.render(renderer.encode(image), az, el, dt)[0])


def _read(path: str | Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


# --------------------------------------------------------------------------- ViewerSession


def test_update_equals_the_inference_render_and_encodes_once(
    renderer: NovelViewRenderer, png: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = ViewerSession(renderer)
    calls = []
    encode = renderer.encode
    monkeypatch.setattr(renderer, "encode", lambda images: calls.append(1) or encode(images))
    note = session.set_image(png)
    assert note == f"**{png.name}**: 32x32 px"
    poses = [(0.0, 0.0, 0.0), (40.0, 10.0, 1.0), (-75.0, -30.0, -1.5), (180.0, 80.0, 2.0)]
    views = [session.update(*pose) for pose in poses]
    assert len(calls) == 1  # one encode for the image, none per slider move
    for pose, view in zip(poses, views, strict=True):
        assert view.shape == (32, 32, 3) and view.dtype == np.uint8
        assert np.array_equal(view, _expected(renderer, png, *pose))
    assert not np.array_equal(views[0], views[1])  # the pose moves the render
    # The strip: the input, then one render per slot at the input view, in ONE row, enlarged
    # to 64 px tiles with a dt label under each.
    assert session.strip.shape[1] == 6 * 66 + 2 and 68 < session.strip.shape[0] < 68 + 30
    assert np.array_equal(session.strip[2:66:2, 2:66:2], _read(png))


def test_session_errors_name_the_fix(renderer: NovelViewRenderer, tmp_path: Path) -> None:
    session = ViewerSession(renderer)
    with pytest.raises(ViewerError, match="no image yet: upload an image or pick an example"):
        session.update(0, 0, 0)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="notes.png is not a readable image"):
        session.set_image(text)
    session.set_image(np.full((32, 32, 3), 255, dtype=np.uint8))
    with pytest.raises(ViewerError, match=r"dt=2.5 is outside \[-2, 2\]"):
        session.update(0, 0, 2.5)
    with pytest.raises(ViewerError, match="unknown export kind 'spin'"):
        session.export("spin", tmp_path, 0, 0, 0)
    with pytest.raises(ViewerError, match="turntable_views must be >= 1"):
        ViewerSession(renderer, turntable_views=0)


def test_images_over_the_limits_are_refused_before_decoding(
    renderer: NovelViewRenderer, png: Path
) -> None:
    limits = ImageLimits(max_pixels=32 * 31, max_bytes=None, setting="image_limits")
    session = ViewerSession(renderer, limits=limits)
    with pytest.raises(ImageTooLargeError, match=r"is 32x32 px, more than the 992 px accepted"):
        session.set_image(png)
    assert session.latent is None
    session = ViewerSession(renderer, limits=limits._replace(max_pixels=None, max_bytes=10))
    with pytest.raises(ImageTooLargeError, match=r"raise image_limits.max_bytes"):
        session.set_image(png)
    session.limits = ImageLimits()
    assert session.set_image(png).startswith(f"**{png.name}**")


def test_wrong_size_is_resized_with_a_note(renderer: NovelViewRenderer, png: Path) -> None:
    wide = Image.open(png).convert("RGB").resize((48, 40))
    session = ViewerSession(renderer)
    note = session.set_image(wide, name="wide.png")
    assert note.startswith("**wide.png**: 48x40 px, resized to the model's 32x32 px")
    assert session.update(10, 0, 0).shape == (32, 32, 3)


def test_latent_slices_blend_neighbouring_slots(renderer: NovelViewRenderer, png: Path) -> None:
    session = ViewerSession(renderer)
    session.set_image(png)
    low, high, mid = (session.latent_slices(dt).astype(float) for dt in (0, 1, 0.5))
    assert not np.array_equal(low, high)
    assert np.abs(mid - (low + high) / 2).max() <= 1.0  # uint8 rounding


def test_exports_write_gifs_into_a_new_folder(
    renderer: NovelViewRenderer, png: Path, tmp_path: Path
) -> None:
    session = ViewerSession(renderer, turntable_views=6, interpolation_steps=1)
    session.set_image(png)
    turntable = session.export("turntable", tmp_path, 30, 10, 0.5)
    assert turntable.folder.parent == tmp_path and turntable.files[0].suffix == ".gif"
    with Image.open(turntable.files[0]) as gif:
        assert gif.n_frames == 6 and gif.size == (256, 256)  # enlarged 8x for display
        gif.seek(0)
        first = np.asarray(gif.convert("RGB"))[::8, ::8]
    error = np.abs(first.astype(int) - session.update(30, 10, 0.5))
    assert error.mean() < 3  # the GIF's 256-colour palette, dithered
    sweep = session.export("time_sweep", tmp_path, 0, 0, 0)
    with Image.open(sweep.files[0]) as gif:
        assert gif.n_frames == 2 * 2 * 2 + 1  # dt -2..2 in half steps
    assert not list(tmp_path.glob(".*"))  # nothing half-written is left


# --------------------------------------------------------------------------- examples, errors


def test_bundled_examples_are_what_the_generator_makes(tmp_path: Path) -> None:
    written = write_examples(tmp_path)
    assert [p.name for p in written] == [f"{stem}.png" for stem, _, _ in EXAMPLES]
    for path in written:
        assert path.read_bytes() == (EXAMPLES_DIR / path.name).read_bytes(), path.name


def test_examples_offer_the_run_test_split(renderer: NovelViewRenderer, tiny_data: Path) -> None:
    examples = find_examples(renderer, bundled=True, test_split=3)
    assert len(examples) == len(EXAMPLES) + 3
    test = examples[len(EXAMPLES) :]
    # One per (object, timestep) first: the tiny test split has 2 objects at timestep 5.
    assert [e.label.split(" (")[0] for e in test[:2]] == ["test: bar_000 t=5", "test: bar_001 t=5"]
    assert all(e.path.is_relative_to(tiny_data / "test") for e in test)
    renderer.config.data.root = str(tiny_data / "missing")
    try:
        assert len(find_examples(renderer, bundled=False, test_split=3)) == 0
    finally:
        renderer.config.data.root = str(tiny_data)


def test_works_without_gradio(
    renderer: NovelViewRenderer, png: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now raises ImportError
    with pytest.raises(ViewerError, match=r'needs Gradio, an optional extra: pip install -e "\.'):
        build_app(renderer, export_dir=tmp_path)
    session = ViewerSession(renderer)
    session.set_image(png)
    assert session.update(0, 0, 0).shape == (32, 32, 3)


def test_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    cfg = compose_config([f"run_dir={tmp_path}", "device=cpu"], config_name="viewer")
    with pytest.raises(CheckpointError, match="is not a training run folder"):
        viewer(cfg, block=False)


# --------------------------------------------------------------------------- the served app


@pytest.fixture(scope="module")
def server(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """`python -m temporal_nsr.viewer` on a free loopback port; yields its address."""
    pytest.importorskip(
        "gradio", reason='the viewer extra is not installed (pip install -e ".[viewer]")'
    )
    out = tmp_path_factory.mktemp("viewer")
    log = out / "stdout.txt"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(out / "gradio"), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "temporal_nsr.viewer",
        f"run_dir={tiny_run}",
        "device=cpu",
        "precision=fp32",  # the renders are compared with this process's fp32 renders
        "port=0",
        f"image_limits.max_bytes={SERVER_MAX_BYTES}",
        f"hydra.run.dir={out}",
    ]
    with log.open("w") as stdout:
        process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "viewer running on" not in log.read_text():
            if process.poll() is not None:
                pytest.fail(f"the viewer exited with {process.returncode}: {process.stderr.read()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the viewer did not start within {START_TIMEOUT_S} s")
            time.sleep(0.1)
        url = log.read_text().split("viewer running on ")[1].split()[0]
        assert url.startswith("http://127.0.0.1:")
        yield url, process.pid, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def client(server: tuple[str, int, Path]):
    from gradio_client import Client

    return Client(server[0], verbose=False)


def test_client_upload_sliders_and_render(
    client, tiny_run: Path, png: Path, tmp_path: Path
) -> None:
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    renderer = NovelViewRenderer.from_run(tiny_run, device="cpu", precision="fp32")  # the server's

    seen, note, view, strip, slices = client.predict(
        handle_file(str(png)), 0, 0, 0, api_name="/set_image"
    )
    assert f"**{png.name}**: 32x32 px" in note
    assert np.array_equal(_read(seen), _read(png))
    assert np.abs(_read(view).astype(int) - _expected(renderer, png, 0, 0, 0)).max() <= 1
    assert _read(strip).shape[1] == 6 * 66 + 2 and _read(slices).size > 0
    first = _read(client.predict(0, 0, 0, api_name="/render"))
    moved = _read(client.predict(60, 15, 1.5, api_name="/render"))
    assert not np.array_equal(first, moved)
    # Same pose through the inference API: equal up to uint8 rounding of float noise.
    expected = _expected(renderer, png, 60, 15, 1.5).astype(int)
    assert np.abs(moved.astype(int) - expected).max() <= 1
    files = client.predict(30, 0, 0, api_name="/export_turntable")
    assert [Path(f).suffix for f in files][0] == ".gif"

    wide = tmp_path / "wide.png"
    Image.open(png).resize((40, 40)).save(wide)
    _, note, view, _, _ = client.predict(handle_file(str(wide)), 0, 0, 0, api_name="/set_image")
    assert "40x40 px, resized to the model's 32x32 px" in note
    assert _read(view).shape == (32, 32, 3)
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(AppError, match="notes.txt is not a readable image: upload a PNG or"):
        client.predict(handle_file(str(text)), 0, 0, 0, api_name="/set_image")
    assert not list((REPO / "temporal_nsr").rglob("*.pyi"))  # Gradio writes none into the package


def test_server_logs_what_it_uses(client, server: tuple[str, int, Path], tiny_run: Path) -> None:
    log = server[2].read_text()
    assert f"loaded {tiny_run / 'checkpoints'}" in log and "(global step " in log
    assert "on cpu, weights " in log and log.count(" - loaded ") == 1
    assert "input image: " in log  # after the uploads of the tests before


def _rss_mb(pid: int) -> float:
    """Resident memory of a process (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split("VmRSS:")[1].split()[0]) / 1024


def test_client_uploads_over_the_limits_get_one_line(
    client, server: tuple[str, int, Path], png: Path, tmp_path: Path
) -> None:
    import httpx
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client.predict(handle_file(str(png)), 0, 0, 0, api_name="/set_image")
    before = _rss_mb(server[1])
    wide = tmp_path / "wide.png"  # 16.8 M pixels in a few kB: refused from the header
    Image.new("1", (4097, 4096)).save(wide)
    with pytest.raises(AppError, match=r"^wide.png is 4097x4096 px, more than the 16777216 px"):
        client.predict(handle_file(str(wide)), 0, 0, 0, api_name="/set_image")
    bomb = tmp_path / "bomb.png"  # 225 M pixels: PIL's decompression-bomb bound
    Image.new("1", (15000, 15000)).save(bomb)
    with pytest.raises(AppError, match=r"^bomb.png has more than \d+ px, which PIL refuses"):
        client.predict(handle_file(str(bomb)), 0, 0, 0, api_name="/set_image")
    noise = tmp_path / "noise.png"  # few pixels, many bytes
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (900, 900, 3), dtype=np.uint8)).save(noise)
    assert noise.stat().st_size > SERVER_MAX_BYTES
    # Too many bytes: the server refuses to store the upload (gradio_client checks first).
    with pytest.raises(ValueError, match=f"exceeds the maximum file size of {SERVER_MAX_BYTES}"):
        client.predict(handle_file(str(noise)), 0, 0, 0, api_name="/set_image")
    with noise.open("rb") as upload:
        files = {"files": ("noise.png", upload, "image/png")}
        answer = httpx.post(f"{server[0]}gradio_api/upload", files=files, timeout=60)
    assert answer.status_code == 413
    assert answer.text == f"File size exceeded maximum allowed size of {SERVER_MAX_BYTES} bytes."
    assert _rss_mb(server[1]) - before < 100  # nothing decoded (4097 x 4096 float RGB: 200 MB)
    # The session of the last accepted image still serves.
    view = _read(client.predict(0, 0, 0, api_name="/render"))
    assert view.shape == (32, 32, 3)


def test_browser_loads_the_page_and_a_slider_moves_the_view(
    server: tuple[str, int, Path], png: Path, tmp_path: Path
) -> None:
    url = server[0]
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `make system-deps` (apt-get install chromium)")
    offsite: list[str] = []

    def local_only(route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            offsite.append(route.request.url)
            route.abort()

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = browser.new_page()
            page.route("**/*", local_only)
            page.goto(url, wait_until="load")
            page.locator("#input-image input[type=file]").set_input_files(str(png))
            view = page.locator("#view img")
            view.wait_for(timeout=30_000)
            before_src = view.get_attribute("src")
            before = view.screenshot()
            page.locator("#azimuth input[type=range]").fill("90")
            page.wait_for_function(
                "src => document.querySelector('#view img').src !== src", arg=before_src
            )
            after = view.screenshot()
            # orbit by drag: a slow drag 40 px to the left, a pixel at a time, turns the
            # azimuth by -20 degrees (0.5 degree per pixel; fractions add up)
            src = view.get_attribute("src")
            box = view.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            page.mouse.move(x, y)
            page.mouse.down()
            page.mouse.move(x - 40, y, steps=40)
            page.mouse.up()
            page.wait_for_function(
                "src => document.querySelector('#view img').src !== src", arg=src
            )
            dragged = float(page.locator("#azimuth input[type=range]").input_value())
            shot = page.screenshot(full_page=True)
        finally:
            browser.close()
    assert not offsite, f"the page asked for off-machine resources: {offsite}"
    assert before != after
    assert dragged == 70.0  # 90 - 40 px * 0.5
    page_image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert page_image.shape[1] == 1280 and page_image.std() > 5  # not blank


def test_sessions_expire_by_count_and_time_and_free_their_latents(
    renderer: NovelViewRenderer, png: Path
) -> None:
    now = [0.0]
    pool = SessionPool(max_sessions=4, idle_s=60, clock=lambda: now[0])
    latents, keys = [], []
    for _ in range(40):  # 40 tabs opened one after another: memory must plateau at 4 sessions
        session = ViewerSession(renderer)
        session.set_image(png)
        latents.append(weakref.ref(session.latent))
        keys.append(pool.add(session))
        del session
        now[0] += 1
    gc.collect()
    assert len(pool) == 4 and sum(ref() is not None for ref in latents) == 4
    assert pool.get(keys[0]) is None  # evicted: its key finds nothing
    assert pool.get(keys[-1]).update(10, 0, 0).shape == (32, 32, 3)  # the newest serve
    now[0] += 61  # an hour of idle tabs later: every session expires
    assert pool.get(keys[-1]) is None and len(pool) == 0
    gc.collect()
    assert all(ref() is None for ref in latents)
    with pytest.raises(ViewerError, match="sessions.max must be >= 1"):
        SessionPool(0, 60)


def _api(app, name: str):
    """The function behind an API endpoint of a built app, called as the server would."""
    (fn,) = [f.fn for f in app.fns.values() if f.api_name == name]
    return fn


def test_app_requests_share_the_bounded_pool_and_refusals_are_one_line(
    renderer: NovelViewRenderer, png: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gr = pytest.importorskip("gradio")
    app = build_app(renderer, export_dir=tmp_path, max_sessions=3, max_exports=2)
    upload = {"path": str(png), "orig_name": png.name}
    keys = [_api(app, "set_image")(upload, 0, 0, 0)[-1] for _ in range(10)]
    assert len(app.viewer_sessions) == 3
    assert _api(app, "render")(keys[-1], 20, 5, 0.5).shape == (32, 32, 3)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="temporal_nsr.viewer.app"):
        refused = [
            (_api(app, "render"), (keys[0], 0, 0, 0), "this session expired"),
            (_api(app, "render"), (keys[-1], float("nan"), 0, 0), "azimuth=nan and elevation"),
            (_api(app, "render"), (keys[-1], 0, float("inf"), 0), "elevation=inf must be"),
            (_api(app, "set_image"), (upload, float("nan"), 0, 0), "azimuth=nan"),
            (_api(app, "slices"), (keys[-1], float("nan")), r"dt=nan is outside"),
        ]
        for fn, args, message in refused:
            with pytest.raises(gr.Error, match=message) as raised:
                fn(*args)
            assert raised.value.print_exception is False  # no traceback on the console
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == len(refused) and all(line.startswith("refused: ") for line in lines)
    assert all("\n" not in line for line in lines)
    for _ in range(4):  # exports are capped: the oldest go
        _api(app, "export_turntable")(keys[-1], 0, 0, 0)
    assert len(list(tmp_path.glob("*/.viewer_export"))) == 2


def test_exports_beyond_the_cap_are_removed_and_nothing_else(
    renderer: NovelViewRenderer, png: Path, tmp_path: Path
) -> None:
    session = ViewerSession(renderer, turntable_views=2)
    session.set_image(png)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    folders = [session.export("turntable", tmp_path, az, 0, 0).folder for az in (0, 10, 20)]
    for age, folder in enumerate(reversed(folders)):  # distinct times, oldest first
        os.utime(folder, (1e9 - age, 1e9 - age))
    assert prune_exports(tmp_path, keep=1) == [folders[1], folders[0]]
    assert folders[2].is_dir() and (mine / "notes.txt").is_file()


def test_thin_images_are_refused_from_the_header_and_resized_before_padding(
    renderer: NovelViewRenderer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = compose_config([], "viewer")
    limits = ImageLimits(**cfg.image_limits, setting="image_limits")
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1, 14000), "white").save(strip)  # a few hundred bytes
    with pytest.raises(ImageTooLargeError, match=r"^strip.png is 1x14000 px, a side longer than"):
        ViewerSession(renderer, limits=limits).set_image(strip)
    long = tmp_path / "long.png"
    Image.new("RGB", (9, 2000), "white").save(long)
    with pytest.raises(ImageTooLargeError, match=r"^long.png is 9x2000 px, 222 times longer"):
        ViewerSession(renderer, limits=limits).set_image(long)
    padded = []
    pad = torch.nn.functional.pad

    def recording_pad(images, *args, **kwargs):
        padded.append(tuple(images.shape))
        return pad(images, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "pad", recording_pad)
    ViewerSession(renderer).set_image(long)  # unbounded: resized to 1 x 32, then padded
    assert padded[0] == (1, 3, 32, 1)  # (the figures pad small things later)


def test_play_steps_dt_over_the_interpolation_grid_and_loops() -> None:
    offsets, dt = [], -2.0
    for _ in range(10):
        offsets.append(dt)
        dt = next_dt(dt, 2, 1)
    assert offsets == [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, -2]


def test_all_interfaces_print_an_address_other_machines_can_open() -> None:
    assert reachable_url("127.0.0.1", 7860) == "http://localhost:7860/"
    url = reachable_url("0.0.0.0", 7860)
    assert url.startswith("http://") and url.endswith(":7860/") and "0.0.0.0" not in url


def test_page_opens_on_an_example_with_play_and_drag(
    renderer: NovelViewRenderer, png: Path
) -> None:
    pytest.importorskip("gradio", reason="the viewer extra is not installed")
    from temporal_nsr.viewer.examples import Example

    app = build_app(renderer, examples=[Example(png, "bar")], export_dir="/nonexistent")
    loads = [f for f in app.fns.values() if any(t[1] == "load" for t in f.targets)]
    image_in = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "input-image")
    example = next(f for f in loads if [o._id for o in f.outputs] == [image_in._id])
    assert example.fn() == str(png)  # the first example goes into the input on arrival
    assert any(f.js and "mousemove" in f.js for f in loads)  # orbit by drag
    assert any(getattr(b, "elem_id", None) == "play" for b in app.blocks.values())
