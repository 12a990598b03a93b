"""The viewer's web server: load the model a config names, build the page, serve it."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from temporal_nsr.data.images import ImageLimits
from temporal_nsr.errors import UserError
from temporal_nsr.inference import load_renderer
from temporal_nsr.viewer.app import MONO_FONTS, PAGE_CSS, SYSTEM_FONTS, build_app, gradio
from temporal_nsr.viewer.examples import find_examples
from temporal_nsr.viewer.session import ViewerError

GRADIO_SESSIONS = 10000  # Gradio's default state_session_capacity


def free_port(host: str) -> int:
    """A TCP port on `host` that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


ALL_INTERFACES = ("0.0.0.0", "::", "")


def reachable_url(host: str, port: int) -> str:
    """The address another machine can open: this machine's outward IP address when the
    server listens on all interfaces (``host=0.0.0.0``), else ``host`` itself."""
    if host not in ALL_INTERFACES:
        shown = "localhost" if host in ("127.0.0.1", "::1") else host
        return f"http://{shown}:{port}/"
    try:
        # A UDP "connect" sends nothing; it only picks the interface of the default route.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed anywhere real
            address = probe.getsockname()[0]
    except OSError:
        address = socket.gethostname()
    return f"http://{address}:{port}/"


def serve(
    app: Any,
    export_dir: Path | str,
    host: str = "127.0.0.1",
    port: int | None = 0,
    block: bool = True,
    on_start: Callable[[str], None] | None = None,
    max_upload_bytes: int | None = None,
    max_sessions: int | None = None,
) -> str:
    """Start the app's web server and return its address.

    Args:
        app: from ``build_app``.
        export_dir: the ``export_dir`` given to ``build_app``; Gradio may send files from it.
        host: interface to listen on; the default serves this machine only.
        port: TCP port; 0 or None picks a free one.
        block: wait until interrupted (Ctrl-C), then stop the server; False returns at once
            and leaves it running (``app.close()`` stops it).
        on_start: called with the address once the server listens (before blocking): with
            ``host=0.0.0.0`` the machine's network address, which other machines can open.
        max_upload_bytes: larger uploads are refused by the server (HTTP 413, one line) before
            they are stored; None: unbounded.
        max_sessions: tabs whose state Gradio keeps (``build_app``'s ``max_sessions``); None:
            Gradio's default.

    Raises:
        ViewerError: Gradio is missing, or the port cannot be listened on.
    """
    gr = gradio()
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
                max_file_size=max_upload_bytes,
                # Gradio's own per-tab state (a key each here) is bounded like the sessions.
                state_session_capacity=max_sessions or GRADIO_SESSIONS,
            )
            break
        except OSError as error:  # the free port was taken in between: try another
            if attempt == tries - 1:
                raise ViewerError(
                    f"cannot listen on {host}:{chosen} ({error}); pass port=<free port>"
                ) from None
    url = app.local_url
    if host in ALL_INTERFACES:  # Gradio says localhost; a remote user needs the machine's
        url = reachable_url(host, app.server_port)
    if on_start is not None:
        on_start(url)
    if block:
        try:
            app.block_thread()
        finally:
            app.close()
    return url


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
    gradio()  # fail before loading a model when Gradio is missing
    try:
        renderer = load_renderer(cfg)  # logs the checkpoint, device and precision
    except UserError:
        raise
    except ValueError as error:  # a precision the device cannot run
        raise ViewerError(str(error)) from None
    limits = ImageLimits(**cfg.image_limits, setting="image_limits")
    app = build_app(
        renderer,
        examples=find_examples(renderer, cfg.examples.bundled, cfg.examples.test_split),
        export_dir=cfg.export_dir,
        turntable_views=cfg.turntable_views,
        interpolation_steps=cfg.interpolation_steps,
        fps=cfg.fps,
        title=f"temporal_nsr viewer: {Path(cfg.get('run_dir') or cfg.ckpt).name}",
        limits=limits,
        max_sessions=cfg.sessions.max,
        session_idle_s=cfg.sessions.idle_s,
        max_exports=cfg.max_exports,
    )
    url = serve(
        app,
        cfg.export_dir,
        cfg.host,
        cfg.port,
        block=block,
        on_start=on_start,
        max_upload_bytes=limits.max_bytes,
        max_sessions=cfg.sessions.max,
    )
    return app, url
