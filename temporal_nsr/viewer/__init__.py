"""Interactive viewer: a local web app that renders novel views of one image as sliders move.

    python -m temporal_nsr.viewer run_dir=outputs/train/<run> [port=7860] [precision=fp32]

Upload an image (or pick an example), then drag the azimuth, elevation and time-offset (dt)
sliders: the network renders the view at that pose and time, with poses in degrees relative
to the input view as in ``temporal_nsr.inference``. The latent is inferred ONCE per image and
kept for the browser session, so a slider move costs one slot selection, one rotation and one
decode (``ViewerSession.update``). Beside the view: the input's time-slot strip (a render at
the input view for every integer dt) and the latent as RGB depth slices at the current dt (the
channels themselves when C = 3, else their first three principal components, see
``figures.latent_to_rgb``). Two buttons write the current turntable (a full turn at the current
elevation and dt) or time sweep (dt from -max_offset to max_offset at the current pose) as GIF,
plus MP4 when ``imageio-ffmpeg`` is installed, into ``export_dir``. An upload over
``image_limits`` (conf/viewer.yaml: 4096 x 4096 px and 32 MB by default) is refused in one
line, from its header, before it is decoded.

The model runs with ``precision`` (conf default "auto": bfloat16 where the device has native
bf16, about twice as fast; see ``temporal_nsr.acceleration``). The app is built with Gradio, an
optional extra (``pip install -e ".[viewer]"``): only ``build_app`` and ``serve`` import it, so
``ViewerSession`` and the rest of the package work without it. The server listens on ``host``
(127.0.0.1 by default) at ``port`` (0: a free one) and prints its address.

Modules: ``session`` (``ViewerSession``: the latent of one image behind the sliders),
``examples`` (bundled and test-split images), ``app`` (the Gradio page), ``server`` (``serve``
and ``viewer(cfg)``), ``__main__`` (the command).

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

from temporal_nsr.viewer.app import build_app
from temporal_nsr.viewer.examples import (
    EXAMPLES,
    EXAMPLES_DIR,
    Example,
    find_examples,
    write_examples,
)
from temporal_nsr.viewer.server import free_port, serve, viewer
from temporal_nsr.viewer.session import (
    Exported,
    SessionPool,
    ViewerError,
    ViewerSession,
    prune_exports,
)

__all__ = [
    "EXAMPLES",
    "EXAMPLES_DIR",
    "Example",
    "Exported",
    "SessionPool",
    "ViewerError",
    "ViewerSession",
    "build_app",
    "find_examples",
    "free_port",
    "prune_exports",
    "serve",
    "viewer",
    "write_examples",
]
