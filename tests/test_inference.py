"""The inference API on a tiny trained run: loading, input kinds, relative poses, time offsets."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from temporal_nsr.data.folders import dataset_folder
from temporal_nsr.image_input import ImageError
from temporal_nsr.inference import NovelViewRenderer
from temporal_nsr.runs import CheckpointError, load_run, run_datamodule, write_data_root


def _tensor(png: Path) -> torch.Tensor:
    pixels = np.asarray(Image.open(png).convert("RGB"))
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).float()[None] / 255


def test_from_run_loads_in_eval_mode(renderer: NovelViewRenderer) -> None:
    assert renderer.max_offset == 2
    assert renderer.image_size == 32
    assert renderer.device == torch.device("cpu")
    assert not renderer.renderer.training
    assert renderer.checkpoint is not None and renderer.checkpoint.name == "last.ckpt"


def test_zero_pose_and_time_reproduce_the_input_view(
    renderer: NovelViewRenderer, png: Path
) -> None:
    x = _tensor(png)
    latent = renderer.encode(x)
    assert latent.shape[:2] == (1, 5)
    ours = renderer.render(latent, 0, 0, 0)
    net = renderer.renderer
    with torch.no_grad():
        scene = net.select_slot(net.encode(x), torch.zeros(1, dtype=torch.long))
        # Any pose p to itself is the identity rotation: the input camera needs no pose.
        for pose in ([0.0, 0.0], [37.0, -12.0], [200.0, 80.0]):
            p = torch.tensor([pose])
            assert torch.allclose(ours, net.render(scene, p, p), atol=1e-5)


def test_batched_render_equals_one_view_at_a_time(renderer: NovelViewRenderer, png: Path) -> None:
    latent = renderer.encode(png)
    az, el, dt = [0.0, 30.0, -45.0, 90.0], [10.0, 0.0, 20.0, -5.0], [0, 1, -2, 0.25]
    batched = renderer.render(latent, az, el, dt, chunk_size=3)
    assert batched.shape == (4, 3, 32, 32)
    for i in range(4):
        one = renderer.render(latent[0], az[i], el[i], dt[i])
        assert torch.allclose(batched[i : i + 1], one, atol=1e-5)
    # Scalars broadcast against sequences.
    sweep = renderer.render(latent, 0, 15.0, torch.tensor([-1, 0, 1]), chunk_size=None)
    for i, t in enumerate((-1, 0, 1)):
        assert torch.allclose(sweep[i], renderer.render(latent, 0, 15.0, t)[0], atol=1e-5)


def test_fractional_dt_interpolates_neighbouring_slots(
    renderer: NovelViewRenderer, png: Path
) -> None:
    latent = renderer.encode(png)
    mid = renderer.scene(latent, 0.5)
    expected = (renderer.scene(latent, 0) + renderer.scene(latent, 1)) / 2
    assert torch.allclose(mid, expected, atol=1e-6)
    # An integral float is the slot itself.
    assert torch.equal(renderer.render(latent, 10, 5, 1.0), renderer.render(latent, 10, 5, 1))


@pytest.mark.parametrize("dt", [3, -2.5, [0, 4]])
def test_offsets_beyond_max_offset_raise(renderer: NovelViewRenderer, png: Path, dt) -> None:
    latent = renderer.encode(png)
    with pytest.raises(ValueError, match=r"\[-2, 2\]"):
        renderer.render(latent, 0, 0, dt)


def test_every_input_kind_gives_the_same_latent(renderer: NovelViewRenderer, png: Path) -> None:
    reference = renderer.encode(_tensor(png))
    pil = Image.open(png)
    rgba = pil.convert("RGBA")  # opaque: compositing over white changes nothing
    for image in (png, str(png), pil, np.asarray(pil.convert("RGB")), rgba, _tensor(png)[0]):
        assert torch.allclose(renderer.encode(image), reference, atol=1e-6)
    assert renderer.encode([png, pil]).shape[0] == 2
    gray = renderer.encode(Image.new("L", (32, 32), 128))
    assert torch.allclose(gray, renderer.encode(Image.new("RGB", (32, 32), (128,) * 3)))


def test_wrong_size_is_padded_resized_and_warned(
    renderer: NovelViewRenderer, png: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = Image.open(png).convert("RGB").resize((64, 48))
    with caplog.at_level(logging.WARNING, logger="temporal_nsr.inference"):
        latent = renderer.encode(big)
    assert "64x48 px but the model takes 32x32" in caplog.text
    assert latent.shape == renderer.encode(png).shape


def test_unreadable_images_are_clear_errors(renderer: NovelViewRenderer, tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="does not exist"):
        renderer.encode(tmp_path / "missing.png")
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ImageError, match="not a readable image"):
        renderer.encode(text)


def test_bad_run_folders_are_clear_errors(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not a training run folder"):
        NovelViewRenderer.from_run(tmp_path / "nope")
    # A config of another model next to this run's checkpoint.
    other = tmp_path / "other"
    (other / ".hydra").mkdir(parents=True)
    cfg = OmegaConf.load(tiny_run / ".hydra" / "config.yaml")
    cfg.model.renderer.encoder.latent_channels = 3
    OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        NovelViewRenderer.from_run(other)
    shutil.copytree(tiny_run / "checkpoints", other / "checkpoints")
    with pytest.raises(CheckpointError) as error:
        NovelViewRenderer.from_run(other)
    message = str(error.value)
    assert "does not fit the model" in message
    assert "in the checkpoint but" in message and "more mismatch" in message
    assert "\n" not in message and len(message) < 600


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(tiny_run: Path, renderer: NovelViewRenderer, png: Path) -> None:
    cuda = NovelViewRenderer.from_run(tiny_run, device="auto")
    assert cuda.device.type == "cuda"
    views = cuda.render(cuda.encode(png), [0, 90], 20, [0, 1.5])
    assert views.device.type == "cuda"
    cpu = renderer.render(renderer.encode(png), [0, 90], 20, [0, 1.5])
    assert torch.allclose(views.cpu(), cpu, atol=1e-3)


def test_relative_pose_of_an_input_at_zero_elevation() -> None:
    """The module docstring's recipe: (az_s, 0) -> (az_t, el_t) is (az_t - az_s, el_t)."""
    from temporal_nsr.model.rotation import pose_to_rotation, source_to_target

    source = torch.tensor([[40.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[-75.0, 33.0]], dtype=torch.float64)
    relative = torch.tensor([[-115.0, 33.0]], dtype=torch.float64)
    assert torch.allclose(source_to_target(source, target), pose_to_rotation(relative))


class WritesMarker:
    """Pickles to a call of open(marker, "w"): loading it with weights_only=False creates the
    marker file, the harmless stand-in for code run from a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def malicious_checkpoint(path: Path, marker: Path, state: dict) -> Path:
    """A checkpoint file holding ``state`` plus an object that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**state, "payload": WritesMarker(marker)}, path)
    return path


def test_a_run_folder_cannot_run_code(tiny_run: Path, tmp_path: Path) -> None:
    from temporal_nsr.runs import load_run

    shared = tmp_path / "shared"
    shutil.copytree(tiny_run / ".hydra", shared / ".hydra")
    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    marker = tmp_path / "marker"
    bad = malicious_checkpoint(shared / "checkpoints" / "last.ckpt", marker, state)
    for which in ("best", "last", str(bad)):
        with pytest.raises(CheckpointError) as error:
            load_run(shared, which)
        message = str(error.value)
        assert str(bad) in message and "could run code" in message and "\n" not in message
    with pytest.raises(CheckpointError, match="could run code"):
        NovelViewRenderer.from_checkpoint(bad)
    assert not marker.exists()


def test_checkpoint_choice_is_logged_with_its_step(
    tiny_run: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from temporal_nsr.runs import load_run

    with caplog.at_level(logging.INFO, logger="temporal_nsr.runs"):
        run = load_run(tiny_run, "last")
    assert run.step == 8 and run.checkpoint.name == "last.ckpt"
    assert f"loaded {run.checkpoint} (global step 8) on cpu, weights float32" in caplog.text


@pytest.mark.parametrize(
    ("key", "target"),
    [
        ("model.renderer", "hubconf.Evil"),  # a module shipped in the run folder
        ("model.renderer.decoder", "torch.hub.load"),
        ("data", "hubconf.Evil"),
        ("data.name", "temporal_nsr.data.synthetic.blender.subprocess.run"),  # re-exported
        ("data.name", "temporal_nsr.data.synthetic.generator.generate_dataset"),  # a function
    ],
)
def test_a_run_config_builds_only_temporal_nsr_classes(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, target: str
) -> None:
    from temporal_nsr.runs import load_run, run_datamodule

    shared = tmp_path / "shared"
    shutil.copytree(tiny_run / ".hydra", shared / ".hydra")
    (shared / "checkpoints").symlink_to(tiny_run / "checkpoints")
    marker = tmp_path / "marker"
    (shared / "hubconf.py").write_text(f"open({str(marker)!r}, 'w')\nEvil = object\n")
    monkeypatch.syspath_prepend(str(shared))
    monkeypatch.chdir(shared)
    cfg = OmegaConf.load(shared / ".hydra" / "config.yaml")
    if key == "data.name":
        OmegaConf.update(cfg, key, {"_target_": target, "_args_": [["touch", str(marker)]]})
    else:
        OmegaConf.update(cfg, f"{key}._target_", target)
    OmegaConf.save(cfg, shared / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError) as raised:
        run = load_run(shared, "last")
        run_datamodule(run.cfg)
    message = str(raised.value)
    assert f"{key}._target_={target!r} is not a temporal_nsr model or data class" in message
    assert "\n" not in message and not marker.exists()


def test_a_stored_config_builds_only_temporal_nsr_classes(tiny_run: Path, tmp_path: Path) -> None:
    """A .ckpt alone is built from the config it stores: the same check as a run folder's."""
    from temporal_nsr.runs import RUN_CONFIG, load_checkpoint

    state = torch.load(tiny_run / "checkpoints" / "last.ckpt", weights_only=True)
    state[RUN_CONFIG]["model"]["renderer"]["_target_"] = "hubconf.Evil"
    torch.save(state, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match=r"model\.renderer\._target_='hubconf.Evil' is not"):
        load_checkpoint(tmp_path / "evil.ckpt")


def test_a_copied_run_finds_its_data_or_generates_it(
    tiny_run: Path, tiny_data: Path, tmp_path: Path
) -> None:
    """The saved config's data.root is relative to the checkout (PROJECT_ROOT); a copy that
    cannot resolve it uses the root recorded in training, else generates the run's dataset
    from its generator config into that config's own folder; with no generator, one line
    names data.root=."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run / ".hydra", copy / ".hydra")
    shutil.copytree(tiny_run / "checkpoints", copy / "checkpoints")
    cfg = OmegaConf.load(copy / ".hydra" / "config.yaml")
    # As a run saved before datasets were named from their config: data/<data.name>.
    cfg.data.root, cfg.data.generator.backend = "${paths.data_dir}/${data.name}", "${backend}"
    cfg.paths.data_dir = str(tmp_path / "clone" / "data")
    OmegaConf.save(cfg, copy / ".hydra" / "config.yaml")
    gone = shutil.copytree(tiny_data, tmp_path / "clone" / "data" / "tiny")
    assert Path(run_datamodule(load_run(copy, "last").cfg).root) == gone  # still read there
    shutil.rmtree(gone)  # as a fresh clone would see it
    run = load_run(copy, "last")
    assert len(run_datamodule(run.cfg).split("test")) > 0
    made = Path(run.cfg.data.root)
    assert made == dataset_folder(gone.parent, "tiny", cfg.data.generator)
    assert not gone.exists()
    files = sorted(p.relative_to(tiny_data) for p in tiny_data.glob("*/*/*.png"))
    assert files == sorted(p.relative_to(made) for p in made.glob("*/*/*.png"))
    assert all((made / f).read_bytes() == (tiny_data / f).read_bytes() for f in files)
    write_data_root(copy, tiny_data)  # what train() records
    assert Path(load_run(copy, "last").cfg.data.root) == tiny_data.resolve()
    assert (tiny_run / "data_root").read_text().strip() == str(tiny_data.resolve())  # train()
    (copy / "data_root").unlink()
    cfg.data.generator = None  # a dataset of the user's own: nothing to generate
    OmegaConf.save(cfg, copy / ".hydra" / "config.yaml")
    with pytest.raises(CheckpointError, match=r"data/tiny does not exist here: .*data\.root="):
        run_datamodule(load_run(copy, "last").cfg)


def test_to_pil_and_save(renderer: NovelViewRenderer, png: Path, tmp_path: Path) -> None:
    views = renderer.render(renderer.encode(png), [0, 90], 0, 0)
    pictures = NovelViewRenderer.to_pil(views, size=64)
    assert [p.size for p in pictures] == [(64, 64), (64, 64)] and pictures[0].mode == "RGB"
    assert NovelViewRenderer.save(views[0], tmp_path / "one.png") == [tmp_path / "one.png"]
    assert len(NovelViewRenderer.save(views, tmp_path / "frames")) == 2
    (gif,) = NovelViewRenderer.save(views, tmp_path / "turn.gif", size=96, fps=5)
    with Image.open(gif) as image:
        assert image.size == (96, 96) and image.n_frames == 2


def test_one_slot_strip_for_training_evaluation_and_figures(
    renderer: NovelViewRenderer, png: Path
) -> None:
    # The training media's time sweep, the evaluation's slot strip and the figures' strip are
    # all SceneRenderer.slot_views: every integer dt at the input's own view.
    from temporal_nsr.batch import ViewPair
    from temporal_nsr.evaluation.predictors import slot_strip

    m = renderer.max_offset
    latent = renderer.encode(png)
    strip = renderer.slot_views(latent)
    assert strip.shape == (2 * m + 1, 3, renderer.image_size, renderer.image_size)
    expected = renderer.render(latent, 0.0, 0.0, list(range(-m, m + 1)))
    torch.testing.assert_close(strip, expected, atol=1e-5, rtol=0)
    source = _tensor(png)  # (1, 3, S, S)
    pose = torch.tensor([[30.0, -10.0]])
    pair = ViewPair(source, source, pose, pose, *(torch.zeros(1, dtype=torch.long),) * 3)
    dt, renders = slot_strip(renderer.renderer, pair)
    assert dt.tolist() == list(range(-m, m + 1))
    torch.testing.assert_close(renders, strip.cpu(), atol=1e-4, rtol=0)  # any pose: its own view
