"""The viewer's Gradio page around a loaded model; ``server.serve`` starts it.

Gradio is an optional extra (``pip install -e ".[viewer]"``): only ``build_app`` and ``serve``
import it, so ``ViewerSession`` and the rest of the package work without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from temporal_nsr.data.images import UNBOUNDED, ImageLimits
from temporal_nsr.image_input import ImageError, ImageTooLargeError
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.viewer.examples import Example
from temporal_nsr.viewer.session import SessionPool, ViewerError, ViewerSession, prune_exports

log = logging.getLogger(__name__)

INSTALL_HINT = 'pip install -e ".[viewer]"'
# Page styling: system fonts, so the page asks nothing of servers outside this machine.
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]
# Gradio shows small images at their own size ("scale-down"), but the renders are 32-128 px:
# scale them to the panel, below the panel's label, which floats over the top edge.
PAGE_CSS = (
    ".fit img { object-fit: contain !important; padding-top: 2.2em; box-sizing: border-box; }"
    " #view img { cursor: grab; }"
)
DRAG_DEGREES_PER_PIXEL = 0.5  # orbit by drag: a 360 px drag across the view is a half turn
# Orbit by drag: moving the mouse over the rendered view with the button down moves the
# azimuth and elevation sliders (whose change renders the view), as a slider drag would.
ORBIT_JS = """
() => {
  const scale = SCALE;
  let last = null;
  // Fractions of a degree add up until a whole one (the sliders step by 1): slow drags of a
  // pixel at a time move the view too, in both directions.
  const pending = { azimuth: 0, elevation: 0 };
  const slider = (id) => document.querySelector(`#${id} input[type=range]`);
  const move = (id, delta) => {
    const input = slider(id);
    if (!input) return;
    pending[id] += delta;
    const whole = Math.trunc(pending[id]);
    if (!whole) return;
    pending[id] -= whole;
    const low = Number(input.min), high = Number(input.max), span = high - low;
    let value = Number(input.value) + whole;
    if (id === "azimuth") value = (((value - low) % span) + span) % span + low;  // wraps
    input.value = Math.max(low, Math.min(high, Math.round(value)));
    input.dispatchEvent(new Event("input", { bubbles: true }));
  };
  document.addEventListener("mousedown", (event) => {
    if (!event.target.closest("#view")) return;
    last = [event.clientX, event.clientY];
    event.preventDefault();
  });
  document.addEventListener("mousemove", (event) => {
    if (!last) return;
    move("azimuth", (event.clientX - last[0]) * scale);
    move("elevation", -(event.clientY - last[1]) * scale);
    last = [event.clientX, event.clientY];
  });
  document.addEventListener("mouseup", () => {
    if (!last) return;
    last = null;
    for (const id of ["azimuth", "elevation"]) {
      const input = slider(id);
      if (input) input.dispatchEvent(new Event("change", { bubbles: true }));
    }
  });
}
""".replace("SCALE", str(DRAG_DEGREES_PER_PIXEL))


def next_dt(dt: float, max_offset: int, steps: int) -> float:
    """The play button's next time offset: ``1 / (steps + 1)`` further, from +max_offset back
    to -max_offset (a loop over the interpolation grid)."""
    step = 1.0 / (steps + 1)
    following = round((float(dt) + step) * (steps + 1)) / (steps + 1)
    return -float(max_offset) if following > max_offset + 1e-9 else following


def gradio() -> Any:
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
    limits: ImageLimits = UNBOUNDED,
    max_sessions: int = 32,
    session_idle_s: float = 1800.0,
    max_exports: int = 50,
) -> Any:
    """Build the Gradio app around a loaded model; ``serve`` starts it.

    API endpoints (for ``gradio_client``; the session state stays on the server):
    ``/set_image`` (image -> input as seen, note, main view, strip, latent slices),
    ``/render`` (azimuth, elevation, dt -> view), ``/slices`` (dt -> latent slices),
    ``/export_turntable`` and ``/export_time_sweep`` (azimuth, elevation, dt -> files).
    An upload over ``limits`` is answered with one line before it is decoded; every refused
    request is one line in the log too. Sessions live in a ``SessionPool`` of at most
    ``max_sessions``, each expiring ``session_idle_s`` after its last use (its latent freed);
    ``export_dir`` keeps the ``max_exports`` newest exports.

    Raises:
        ViewerError: Gradio is not installed.
    """
    gr = gradio()
    export_dir = Path(export_dir)
    m = renderer.max_offset
    settings = {
        "turntable_views": turntable_views,
        "interpolation_steps": interpolation_steps,
        "fps": fps,
        "limits": limits,
    }
    ViewerSession(renderer, **settings)  # validates the settings before the page exists
    pool = SessionPool(max_sessions, session_idle_s)
    if max_exports < 1:
        raise ViewerError(f"max_exports must be >= 1, got {max_exports}")
    channels = renderer.renderer.decoder.latent_channels
    mapping = "RGB = channels" if channels == 3 else "RGB = 3 principal components"
    source = renderer.checkpoint if renderer.checkpoint is not None else "model"

    def refuse(message: str) -> Exception:
        """The one line a refused request gets, in the page and in the log (no traceback)."""
        log.warning("refused: %s", message)
        return gr.Error(message, print_exception=False)

    def session_of(key: str | None) -> ViewerSession:
        session = pool.get(key)
        if session is None and key is not None:
            raise refuse(
                f"this session expired (idle for over {session_idle_s:g} s, or more than "
                f"{max_sessions} sessions open): upload the image again"
            )
        if session is None or session.latent is None:
            raise refuse("no image yet: upload an image or pick an example first")
        return session

    def on_image(upload: dict | None, az: float, el: float, dt: float) -> tuple:
        # Raw upload ({"path", "orig_name", ...}, already checked to lie in Gradio's upload
        # folder): gr.Image's own preprocessing would fail on a non-image with a long trace.
        if upload is None:
            return None, "", None, None, None, None
        name = upload.get("orig_name") or Path(upload["path"]).name
        session = ViewerSession(renderer, **settings)
        try:
            note = session.set_image(upload["path"], name=name)
        except ImageTooLargeError as error:
            raise refuse(str(error)) from None
        except ImageError:
            raise refuse(f"{name} is not a readable image: upload a PNG or JPEG file") from None
        try:  # unpreprocessed: the slider values are checked by the session (NaN included)
            view, slices = session.update(az, el, dt), session.latent_slices(dt)
        except ViewerError as error:
            raise refuse(str(error)) from None
        key = pool.add(session)
        return session.input_image, note, view, session.strip, slices, key

    def on_pose(key: str | None, az: float, el: float, dt: float) -> np.ndarray:
        try:
            return session_of(key).update(az, el, dt)
        except ViewerError as error:
            raise refuse(str(error)) from None

    def on_dt(key: str | None, dt: float) -> np.ndarray:
        try:
            return session_of(key).latent_slices(dt)
        except ViewerError as error:
            raise refuse(str(error)) from None

    def exporter(kind: str) -> Callable[..., list[str]]:
        def export(key: str | None, az: float, el: float, dt: float) -> list[str]:
            try:
                exported = session_of(key).export(kind, export_dir, az, el, dt)
            except ViewerError as error:
                raise refuse(str(error)) from None
            prune_exports(export_dir, max_exports)
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
        state = gr.State(None)  # the session's key in ``pool``
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
                    play = gr.Button("play dt", size="sm", visible=m > 0, elem_id="play")
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
            f"time-slot strip: the input, then dt = -{m}..{m} at the input view", 160, "strip"
        )
        playing = gr.State(False)
        ticker = gr.Timer(1.0 / fps, active=False)
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

        def toggle(on: bool) -> tuple:
            return not on, gr.Timer(active=not on), gr.Button("pause" if not on else "play dt")

        play.click(toggle, playing, [playing, ticker, play], api_visibility="private")
        ticker.tick(
            lambda value: next_dt(value, m, interpolation_steps),
            dt,
            dt,
            api_visibility="private",
            show_progress="hidden",
        )
        if examples:  # the page opens on the first example, not empty
            first = str(examples[0].path)
            app.load(lambda: first, None, image_in, api_visibility="private")
        app.load(None, None, None, js=ORBIT_JS)
        turntable_button.click(
            exporter("turntable"), [state, *pose], files, api_name="export_turntable"
        )
        sweep_button.click(
            exporter("time_sweep"), [state, *pose], files, api_name="export_time_sweep"
        )
    app.viewer_sessions = pool  # for tests and diagnostics
    return app
