"""Interactive viewer: a local web app that renders novel views of one image as sliders move.

    python -m temporal_nsr.viewer run_dir=outputs/train/<run> [port=7860] [precision=fp32]

Upload an image (or pick an example), then drag the azimuth, elevation and time-offset (dt)
sliders: the network renders the view at that pose and time, with poses in degrees relative
to the input view as in ``temporal_nsr.inference``. The latent is inferred ONCE per image and
kept for the browser session, so a slider move costs one slot selection, one rotation and one
decode (``ViewerSession.update``). Beside the view: the input's time-slot strip (a render at
the input view for every integer dt) and the latent as RGB depth slices at the current dt (the
channels themselves when C = 3, else their first three principal components, see
``render.latent_to_rgb``). Two buttons write the current turntable (a full turn at the current
elevation and dt) or time sweep (dt from -max_offset to max_offset at the current pose) as GIF,
plus MP4 when ``imageio-ffmpeg`` is installed, into ``export_dir``.

The model runs with ``precision`` (conf default "auto": bfloat16 where the device has native
bf16, about twice as fast; see ``temporal_nsr.acceleration``). The app is built with Gradio, an
optional extra (``pip install -e ".[viewer]"``): only ``build_app`` and ``serve`` import it, so
``ViewerSession`` and the rest of the package work without it. The server listens on ``host``
(127.0.0.1 by default) at ``port`` (0: a free one) and prints its address.

Time one slider update (the server-side work; the network dominates it)::

    renderer = NovelViewRenderer.from_run(run_dir, device="cpu", precision="auto")
    session = ViewerSession(renderer)
    session.set_image("bar.png")                        # encode once
    view = session.update(azimuth=30, elevation=10, dt=2.5)  # (S, S, 3) uint8

Bundled examples: ``temporal_nsr/viewer_examples/*.png`` are views of the default bending bar
made by the project's own generator (128 px; other model sizes resize them, with a note). They
are rewritten, byte for byte, by::

    python -c "from temporal_nsr.viewer import write_examples; write_examples()"
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from PIL import Image
from torch import Tensor

from temporal_nsr.acceleration import keep_freed_memory
from temporal_nsr.callbacks import to_uint8
from temporal_nsr.data.dataset import DatasetError, RenderedViews
from temporal_nsr.enr_checkpoint import CheckpointError
from temporal_nsr.inference import (
    ImageError,
    ImageLike,
    NovelViewRenderer,
    image_batch,
    resolve_device,
)
from temporal_nsr.render import (
    Figure,
    latent_slice_frames,
    latent_to_rgb,
    tile_frames,
    write_figures,
)
from temporal_nsr.runs import load_model

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

log = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).with_name("viewer_examples")
# (file stem, generator schedule, timestep) of the bundled examples; the view of each is the
# generated one whose elevation is closest to EXAMPLE_ELEVATION_DEG.
EXAMPLES = (
    ("bar_sine_t00", "sine", 0),
    ("bar_sine_t05", "sine", 5),
    ("bar_sine_t10", "sine", 10),
    ("bar_sine_t16", "sine", 16),
    ("bar_linear_t12", "linear", 12),
    ("bar_twist_t10", "sine_twist", 10),
)
EXAMPLE_ELEVATION_DEG = 25.0
EXAMPLE_VIEWS = 8  # generated views per timestep to choose from
INSTALL_HINT = 'pip install -e ".[viewer]"'
# Page styling: system fonts, so the page asks nothing of servers outside this machine.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
# Gradio shows small images at their own size ("scale-down"), but the renders are 32-128 px:
# scale them to the panel, below the panel's label, which floats over the top edge.
PAGE_CSS = (
    ".fit img { object-fit: contain !important; padding-top: 2.2em; box-sizing: border-box; }"
)
STRIP_COLUMNS = 11  # tiles per row of the time-slot strip


class ViewerError(ValueError):
    """A viewer setting or request that cannot be served; the message says what to change."""


class Example(NamedTuple):
    """An image offered below the upload box."""

    path: Path
    label: str


class Exported(NamedTuple):
    """Files written by ``ViewerSession.export``."""

    folder: Path
    files: list[Path]  # <name>.gif, and <name>.mp4 when imageio-ffmpeg is installed


def _source_size(image: ImageLike) -> tuple[int, int]:
    """(width, height) of an image as given, before ``image_batch`` fits it to the model."""
    if isinstance(image, (str, Path)):
        with Image.open(image) as opened:
            return opened.size
    if isinstance(image, Image.Image):
        return image.size
    if isinstance(image, (np.ndarray, Tensor)):
        shape = tuple(image.shape)
        # numpy images are (H, W[, 3 or 4]); tensors (3, H, W) or (B, 3, H, W).
        return (shape[1], shape[0]) if isinstance(image, np.ndarray) else (shape[-1], shape[-2])
    raise ImageError(f"cannot read an image from a {type(image).__name__}")


class ViewerSession:
    """The state of one viewer: a loaded model and the latent of the current image.

    ``set_image`` runs the encoder once and precomputes the time-slot strip and the latent
    slices; ``update`` then renders a pose and time offset from the kept latent.

    Args:
        renderer: the loaded model.
        turntable_views: azimuths in an exported turntable (a full turn).
        interpolation_steps: frames between two neighbouring slots in an exported time sweep.
        fps: frames per second of exported animations.
    """

    def __init__(
        self,
        renderer: NovelViewRenderer,
        *,
        turntable_views: int = 36,
        interpolation_steps: int = 4,
        fps: float = 12.0,
    ) -> None:
        if turntable_views < 1 or interpolation_steps < 0 or not fps > 0:
            raise ViewerError(
                f"turntable_views must be >= 1, interpolation_steps >= 0 and fps > 0; got "
                f"{turntable_views}, {interpolation_steps} and {fps}"
            )
        self.renderer = renderer
        self.turntable_views = turntable_views
        self.interpolation_steps = interpolation_steps
        self.fps = fps
        self.name = ""
        self.note = ""
        self.latent: Tensor | None = None  # (K, C, D, H, W)
        self.input_image: np.ndarray | None = None  # (S, S, 3) uint8, what the network saw
        self.strip: np.ndarray | None = None  # (H, W, 3) uint8: input, then every slot
        self._slices: Tensor | None = None  # (K, 3, H', W') latent slices per slot

    @property
    def max_offset(self) -> int:
        return self.renderer.max_offset

    def set_image(self, image: ImageLike, name: str | None = None) -> str:
        """Encode an image and keep its latent; every later ``update`` renders from it.

        Args:
            image: one image, any kind ``NovelViewRenderer.encode`` takes (a path, PIL image,
                uint8 array, (3, H, W) tensor).
            name: shown in the note; default the file name, else "image".

        Returns:
            A note about the input: its size, and how it was resized when it is not S x S.

        Raises:
            ImageError: not an image, an unreadable file, or an array of the wrong kind.
        """
        size = self.renderer.image_size
        batch = image_batch(image, size)  # (B, 3, S, S); raises ImageError for non-images
        if batch.shape[0] != 1:
            raise ImageError(f"the viewer takes one image at a time, got {batch.shape[0]}")
        width, height = _source_size(image)
        if name is None:
            name = Path(image).name if isinstance(image, (str, Path)) else "image"
        latent = self.renderer.encode(batch)[0]  # (K, C, D, H, W)
        m = self.max_offset
        slots = self.renderer.render(latent, 0.0, 0.0, torch.arange(-m, m + 1)).cpu()
        tiles = torch.cat([batch.cpu(), slots])  # (1 + K, 3, S, S): input, then every slot
        self.strip = to_uint8(tile_frames(tiles, min(len(tiles), STRIP_COLUMNS)))
        self._slices = latent_slice_frames(latent_to_rgb(latent.cpu()))  # (K, 3, H', W')
        self.input_image = to_uint8(batch[0])
        self.latent = latent
        self.name = name
        self.note = f"**{name}**: {width}x{height} px"
        if (width, height) != (size, size):
            self.note += (
                f", resized to the model's {size}x{size} px (padded to a square with white "
                "first): an object that fills another part of the frame than in training "
                "renders worse"
            )
        return self.note

    def _require_image(self) -> Tensor:
        if self.latent is None:
            raise ViewerError("no image yet: upload an image or pick an example first")
        return self.latent

    def _check_dt(self, dt: float) -> float:
        m = self.max_offset
        if not abs(dt) <= m:
            raise ViewerError(f"dt={dt} is outside [-{m}, {m}] (the model's max_offset is {m})")
        return float(dt)

    def update(self, azimuth: float, elevation: float, dt: float = 0.0) -> np.ndarray:
        """Render the current image's latent at one pose and time: one slider move.

        Args:
            azimuth: degrees about the input camera's vertical axis, relative to the input view.
            elevation: degrees, relative to the input view.
            dt: time steps after the input's time, |dt| <= max_offset; fractions interpolate
                the two neighbouring slots.

        Returns:
            (S, S, 3) uint8 image, equal to ``to_uint8(renderer.render(latent, azimuth,
            elevation, dt)[0])``.

        Raises:
            ViewerError: no image set yet, or |dt| > max_offset.
        """
        latent = self._require_image()
        view = self.renderer.render(latent, float(azimuth), float(elevation), self._check_dt(dt))
        return to_uint8(view[0])

    def latent_slices(self, dt: float = 0.0) -> np.ndarray:
        """The latent as RGB depth slices at dt; fractions blend the two neighbouring slots.

        The colour map of ``latent_to_rgb`` is affine in the latent, so the blend is the
        colouring of the interpolated latent, as the renderer interpolates it.

        Returns:
            (H', W', 3) uint8: the D depth slices of the slot in a square grid.
        """
        self._require_image()
        position = self._check_dt(dt) + self.max_offset  # in [0, K - 1]
        low = int(np.floor(position))
        high = min(low + 1, 2 * self.max_offset)
        weight = position - low
        frame = (1 - weight) * self._slices[low] + weight * self._slices[high]
        return to_uint8(frame)

    def export(
        self, kind: str, out_dir: Path, azimuth: float, elevation: float, dt: float
    ) -> Exported:
        """Write the turntable or the time sweep of the current image at the current pose.

        Args:
            kind: "turntable" (``turntable_views`` azimuths over a full turn starting at
                ``azimuth``, at ``elevation`` and ``dt``) or "time_sweep" (dt from -max_offset
                to max_offset with ``interpolation_steps`` frames between slots, at the pose).
            out_dir: parent folder; the files go to a new sub-folder, which appears whole
                (written under a temporary name, then renamed).
            azimuth, elevation, dt: the current slider values.

        Raises:
            ViewerError: no image yet, an unknown kind, |dt| > max_offset, or a time sweep of a
                rotation-only model (max_offset = 0).
        """
        latent = self._require_image()
        dt = self._check_dt(dt)
        m = self.max_offset
        if kind == "turntable":
            az = float(azimuth) + torch.arange(self.turntable_views) * (
                360.0 / self.turntable_views
            )
            frames = self.renderer.render(latent, az, float(elevation), dt)
        elif kind == "time_sweep":
            if m == 0:
                raise ViewerError("a rotation-only model (max_offset = 0) has no time to sweep")
            per_slot = self.interpolation_steps + 1
            offsets = torch.arange(2 * m * per_slot + 1) / per_slot - m
            frames = self.renderer.render(latent, float(azimuth), float(elevation), offsets)
        else:
            raise ViewerError(f"unknown export kind {kind!r}: use turntable or time_sweep")
        stem = Path(self.name).stem or "image"
        label = f"{stem}_{kind}_az{azimuth:g}_el{elevation:g}" + (
            f"_dt{dt:g}" if kind == "turntable" else ""
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=out_dir))
        try:
            written = write_figures({kind: Figure(None, frames.cpu())}, tmp, self.fps)
            folder = out_dir / f"{label}_{time.strftime('%Y%m%d-%H%M%S')}_{tmp.name[-6:]}"
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Exported(folder, [folder / path.name for path in written])


# --------------------------------------------------------------------------- examples


def write_examples(out_dir: Path | str = EXAMPLES_DIR) -> list[Path]:
    """Generate the bundled example images with the project's generator (default settings).

    For each entry of ``EXAMPLES``, the default bending-bar dataset (``conf/data/bend.yaml``,
    128 px) is generated with ``EXAMPLE_VIEWS`` views per timestep into a temporary folder, and
    the view of that timestep whose elevation is closest to ``EXAMPLE_ELEVATION_DEG`` is copied.
    Deterministic: the same files byte for byte on every run.

    Returns:
        The files written, in ``EXAMPLES`` order.
    """
    from temporal_nsr.config import compose_config
    from temporal_nsr.data.generate import generate_dataset

    cfg = compose_config([], config_name="generate")
    base = OmegaConf.to_container(cfg.data.generator, resolve=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        datasets: dict[str, Path] = {}
        for stem, schedule, timestep in EXAMPLES:
            if schedule not in datasets:
                root = Path(tmp) / schedule
                generate_dataset(
                    root,
                    {**base, "schedule": schedule, "views_per_timestep": EXAMPLE_VIEWS},
                    progress=False,
                )
                datasets[schedule] = root
            candidates = [
                (abs(float(views.pose[i, 1]) - EXAMPLE_ELEVATION_DEG), views.files[i])
                for split in ("train", "val", "test")
                for views in [
                    RenderedViews(
                        datasets[schedule] / split, base["image_size"], cache_dir=Path(tmp) / "c"
                    )
                ]
                for i in np.flatnonzero(
                    (views.original_timestep == timestep) & (views.original_object_id == 0)
                )
            ]
            _, source = min(candidates)
            target = out_dir / f"{stem}.png"
            partial = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(source, partial)
            os.replace(partial, target)
            written.append(target)
    return written


def find_examples(
    renderer: NovelViewRenderer, bundled: bool = True, test_split: int = 0
) -> list[Example]:
    """Images to offer: the bundled examples, then up to ``test_split`` test images of the run.

    Test images come from ``<data.root>/test`` of the run's config, one per (object, timestep)
    first, then further views; a missing or unreadable dataset is skipped with a log line.
    """
    examples = []
    if bundled:
        examples += [
            Example(path, f"generated: {path.stem}") for path in sorted(EXAMPLES_DIR.glob("*.png"))
        ]
    if test_split <= 0 or renderer.config is None:
        return examples
    data = renderer.config.data
    try:
        root = Path(data.root) / "test"
        views = RenderedViews(root, data.image_size, data.num_timesteps, data.get("static", False))
    except (DatasetError, OSError, ValueError, OmegaConfBaseException) as error:
        log.info("no test-split examples: %s", error)
        return examples
    objects, times = views.original_object_id, views.original_timestep
    # Rank of each record among the views of its (object, timestep): 0 for the first view.
    rank = np.zeros(len(views), dtype=np.int64)
    seen: dict[tuple[int, int], int] = {}
    for i, key in enumerate(zip(objects.tolist(), times.tolist(), strict=True)):
        rank[i] = seen.get(key, 0)
        seen[key] = rank[i] + 1
    order = np.lexsort((times, objects, rank))[:test_split]
    for i in order:
        obj = views.object_names[int(objects[i])]
        examples.append(
            Example(views.files[i], f"test: {obj} t={times[i]} ({views.files[i].stem})")
        )
    return examples


# --------------------------------------------------------------------------- web app


def _gradio() -> Any:
    """Import Gradio, or say how to install it."""
    try:
        import gradio
    except ImportError:
        raise ViewerError(f"the viewer needs Gradio, an optional extra: {INSTALL_HINT}") from None
    return gradio


def build_app(
    renderer: NovelViewRenderer,
    *,
    examples: list[Example] = (),
    export_dir: Path | str,
    turntable_views: int = 36,
    interpolation_steps: int = 4,
    fps: float = 12.0,
    title: str = "temporal_nsr viewer",
) -> Any:
    """Build the Gradio app around a loaded model; ``serve`` starts it.

    API endpoints (for ``gradio_client``; the session state stays on the server):
    ``/set_image`` (image -> input as seen, note, main view, strip, latent slices),
    ``/render`` (azimuth, elevation, dt -> view), ``/slices`` (dt -> latent slices),
    ``/export_turntable`` and ``/export_time_sweep`` (azimuth, elevation, dt -> files).

    Raises:
        ViewerError: Gradio is not installed.
    """
    gr = _gradio()
    export_dir = Path(export_dir)
    m = renderer.max_offset
    settings = {
        "turntable_views": turntable_views,
        "interpolation_steps": interpolation_steps,
        "fps": fps,
    }
    ViewerSession(renderer, **settings)  # validates the settings before the page exists
    channels = renderer.renderer.decoder.latent_channels
    mapping = "RGB = channels" if channels == 3 else "RGB = 3 principal components"
    source = renderer.checkpoint if renderer.checkpoint is not None else "model"

    def session_of(state: ViewerSession | None) -> ViewerSession:
        if state is None or state.latent is None:
            raise gr.Error("no image yet: upload an image or pick an example first")
        return state

    def on_image(upload: dict | None, az: float, el: float, dt: float) -> tuple:
        # Raw upload ({"path", "orig_name", ...}, already checked to lie in Gradio's upload
        # folder): gr.Image's own preprocessing would fail on a non-image with a long trace.
        if upload is None:
            return None, "", None, None, None, None
        name = upload.get("orig_name") or Path(upload["path"]).name
        session = ViewerSession(renderer, **settings)
        try:
            note = session.set_image(upload["path"], name=name)
        except ImageError:
            raise gr.Error(f"{name} is not a readable image: upload a PNG or JPEG file") from None
        try:  # unpreprocessed: the slider values are not checked against their ranges
            view, slices = session.update(az, el, dt), session.latent_slices(dt)
        except ViewerError as error:
            raise gr.Error(str(error)) from None
        return session.input_image, note, view, session.strip, slices, session

    def on_pose(state: ViewerSession | None, az: float, el: float, dt: float) -> np.ndarray:
        try:
            return session_of(state).update(az, el, dt)
        except ViewerError as error:
            raise gr.Error(str(error)) from None

    def on_dt(state: ViewerSession | None, dt: float) -> np.ndarray:
        try:
            return session_of(state).latent_slices(dt)
        except ViewerError as error:
            raise gr.Error(str(error)) from None

    def exporter(kind: str) -> Callable[..., list[str]]:
        def export(state: ViewerSession | None, az: float, el: float, dt: float) -> list[str]:
            try:
                exported = session_of(state).export(kind, export_dir, az, el, dt)
            except ViewerError as error:
                raise gr.Error(str(error)) from None
            return [str(path) for path in exported.files]

        return export

    def picture(label: str, height: int, elem_id: str | None = None) -> Any:
        """An output image panel (PNG, not editable, scaled to fit)."""
        return gr.Image(
            label=label,
            format="png",
            interactive=False,
            height=height,
            elem_id=elem_id,
            elem_classes="fit",
        )

    with gr.Blocks(title=title, delete_cache=(600, 3600), analytics_enabled=False) as app:
        state = gr.State(None)
        gr.Markdown(
            f"## {title}\n`{source}`: {renderer.image_size} px, "
            + (f"time offsets -{m}..{m}" if m else "rotation only (max_offset = 0)")
            + f", latent C = {channels}. Poses are degrees relative to the input view."
        )
        with gr.Row():
            with gr.Column(scale=1, min_width=240):
                image_in = gr.Image(
                    type="filepath",
                    image_mode=None,
                    label="input image (or an example below)",
                    sources=["upload", "clipboard"],
                    height=256,
                    elem_id="input-image",
                    elem_classes="fit",
                )
                note = gr.Markdown(elem_id="note")
                seen = picture("what the network sees", 160)
            with gr.Column(scale=2, min_width=320):
                view = picture("rendered view", 420, "view")
                azimuth = gr.Slider(
                    -180, 180, value=0, step=1, label="azimuth (deg)", elem_id="azimuth"
                )
                elevation = gr.Slider(
                    -90, 90, value=0, step=1, label="elevation (deg)", elem_id="elevation"
                )
                dt = gr.Slider(
                    -max(m, 1),
                    max(m, 1),
                    value=0,
                    step=0.05,
                    label=f"time offset dt (steps, |dt| <= {m})",
                    visible=m > 0,
                    elem_id="dt",
                )
                with gr.Row():
                    reset = gr.Button("reset pose", size="sm")
                    turntable_button = gr.Button("export turntable", size="sm")
                    sweep_button = gr.Button("export time sweep", size="sm", visible=m > 0)
                files = gr.File(
                    label="exported animations",
                    file_count="multiple",
                    interactive=False,
                    height=150,
                )
            with gr.Column(scale=1, min_width=240):
                slices = picture(f"latent depth slices at dt, {mapping}", 320, "slices")
        strip = picture(
            f"time-slot strip: the input, then dt = -{m}..{m} at the input view", 240, "strip"
        )
        if examples:
            gr.Examples(
                [[str(example.path)] for example in examples],
                inputs=[image_in],
                example_labels=[example.label for example in examples],
                examples_per_page=12,
            )

        pose = [azimuth, elevation, dt]
        image_in.change(
            on_image,
            [image_in, *pose],
            [seen, note, view, strip, slices, state],
            api_name="set_image",
            preprocess=False,
        )
        gr.on(
            [azimuth.change, elevation.change, dt.change],
            on_pose,
            [state, *pose],
            view,
            api_name="render",
            trigger_mode="always_last",
            show_progress="hidden",
        )
        dt.change(
            on_dt,
            [state, dt],
            slices,
            api_name="slices",
            trigger_mode="always_last",
            show_progress="hidden",
        )
        reset.click(lambda: (0, 0, 0), None, pose, api_visibility="private")
        turntable_button.click(
            exporter("turntable"), [state, *pose], files, api_name="export_turntable"
        )
        sweep_button.click(
            exporter("time_sweep"), [state, *pose], files, api_name="export_time_sweep"
        )
    return app


def free_port(host: str) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def serve(
    app: Any,
    export_dir: Path | str,
    host: str = "127.0.0.1",
    port: int | None = 0,
    block: bool = True,
) -> str:
    """Start the app's web server and return its address.

    Args:
        app: from ``build_app``.
        export_dir: the ``export_dir`` given to ``build_app``; Gradio may send files from it.
        host: interface to listen on; the default serves this machine only.
        port: TCP port; 0 or None picks a free one.
        block: wait until interrupted (Ctrl-C), then stop the server; False returns at once
            and leaves it running (``app.close()`` stops it).

    Raises:
        ViewerError: Gradio is missing, or the port cannot be listened on.
    """
    gr = _gradio()
    export_dir = Path(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    tries = 3 if not port else 1
    for attempt in range(tries):
        chosen = port or free_port(host)
        try:
            app.launch(
                server_name=host,
                server_port=chosen,
                prevent_thread_lock=True,
                quiet=True,
                show_error=True,
                allowed_paths=[str(export_dir)],
                footer_links=["api"],
                theme=theme,
                css=PAGE_CSS,
            )
            break
        except OSError as error:  # the free port was taken in between: try another
            if attempt == tries - 1:
                raise ViewerError(
                    f"cannot listen on {host}:{chosen} ({error}); pass port=<free port>"
                ) from None
    url = app.local_url
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return url


# --------------------------------------------------------------------------- entry point


def viewer(
    cfg: DictConfig, on_start: Callable[[str], None] | None = None, block: bool = True
) -> tuple[Any, str]:
    """Load ``cfg.run_dir`` (or ``cfg.ckpt``) and serve the viewer until interrupted.

    Args:
        cfg: ``conf/viewer.yaml``.
        on_start: called with the address once the server listens.
        block: wait until Ctrl-C; False returns the running app (``app.close()`` stops it).

    Returns:
        The app and its address.

    Raises:
        CheckpointError: a missing or broken run. ViewerError: Gradio missing, bad settings.
    """
    _gradio()  # fail before loading a model when Gradio is missing
    try:
        device = resolve_device(cfg.device)
        run = load_model(cfg.get("run_dir"), cfg.get("ckpt"), cfg.checkpoint, str(device))
        renderer = NovelViewRenderer.from_loaded(run, device, precision=cfg.precision)
    except CheckpointError:
        raise
    except ValueError as error:  # a precision the device cannot run
        raise ViewerError(str(error)) from None
    examples = find_examples(renderer, cfg.examples.bundled, cfg.examples.test_split)
    app = build_app(
        renderer,
        examples=examples,
        export_dir=cfg.export_dir,
        turntable_views=cfg.turntable_views,
        interpolation_steps=cfg.interpolation_steps,
        fps=cfg.fps,
        title=f"temporal_nsr viewer: {Path(cfg.get('run_dir') or cfg.ckpt).name}",
    )
    url = serve(app, cfg.export_dir, cfg.host, cfg.port, block=False)
    if on_start is not None:
        on_start(url)
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return app, url


@hydra.main(config_path="../conf", config_name="viewer", version_base="1.3")
def main(cfg: DictConfig) -> None:
    keep_freed_memory()  # a long-lived process rendering same-sized views (DESIGN.md §7)
    try:
        viewer(
            cfg,
            on_start=lambda url: print(f"viewer running on {url} (Ctrl-C stops it)", flush=True),
        )
    except (CheckpointError, ViewerError) as error:
        raise SystemExit(f"viewer: {error}") from None


if __name__ == "__main__":
    main()
