"""Load a trained model: a run folder or a checkpoint file, which checkpoint, and its splits.

A **run folder** is what ``temporal_nsr.train`` writes: ``.hydra/config.yaml`` (the recipe of
its model) and ``checkpoints/*.ckpt`` (Lightning training states). Which checkpoint:

* ``last``: the furthest training state, the checkpoint with the highest global step stored
  in it (``last.ckpt`` wins a tie). Modification times are never used, so a copied, rsynced
  or restored folder resumes and loads the same state. ``ckpt_path=last`` of ``train`` means
  the same (``temporal_nsr.training.checkpointing.resolve_ckpt_path``).
* ``best``: the file that the monitored ModelCheckpoint (``conf/callbacks/default.yaml``)
  recorded as best, as stored in the furthest checkpoint; ``last`` when none was recorded.
* a path to a ``.ckpt`` file.

A **checkpoint file** (``ckpt=``) loads alone: a ``.ckpt`` written by ``temporal_nsr.train``
stores its run's config (``RUN_CONFIG``: the model's constructor tree, the data settings, as
``.hydra/config.yaml`` holds them, resolved), so the file renders without its run folder. A
``.ckpt`` written before that takes the config of its run folder (the file in
``<run>/checkpoints/``). An original ENR / temporal-ENR file (``temporal_nsr.enr_checkpoint``)
loads as a run with no ``data``: a command that opens a dataset (``run_datamodule``) then asks
for ``data=``.

**Formats** are registered (``register_format``): each recognises its files and translates one
into a ``StoredModel`` (its config, its weights under ``TemporalNSRModule``'s keys), and
everything else (building the model, fitting the weights, ``init_from=``) is shared. A new
format is one class with ``@register_format``, imported at the bottom of this file.

Every file is read with ``torch.load(weights_only=True)`` (``read_checkpoint``): tensors and
plain containers only, so a shared run folder or file cannot run code. Every failure is a
``CheckpointError`` whose one-line message names the file and the fix.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import torch
from hydra._internal.utils import _locate
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from lightning.pytorch import LightningDataModule
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from torch import Tensor

from temporal_nsr import CHECKPOINT_DIR, LAST
from temporal_nsr.atomic import check_separate, inside, write_text
from temporal_nsr.data.datamodule import ViewPairDataModule
from temporal_nsr.data.folders import dataset_folder, prepare_dataset
from temporal_nsr.errors import UserError
from temporal_nsr.model.renderer import SceneRenderer

log = logging.getLogger(__name__)

RENDERER = "renderer."  # TemporalNSRModule's key prefix of the network's weights


FIX_FORMAT = (
    "pass an original ENR file (a dict with 'config' and 'state_dict', as "
    "NeuralRenderer.save writes) or a .ckpt written by temporal_nsr.train"
)
RUN_CONFIG = "run_config"  # the key of a .ckpt holding its run's config (StoreRunConfig)


class CheckpointError(UserError):
    """A run folder or checkpoint file that cannot be used (``run_dir=``, ``ckpt=``,
    ``init_from=``, ``ckpt_path=``); the one-line message names the file, the layer, the fix."""


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint file onto the CPU, tensors and plain containers only: the one reader
    of every checkpoint (run folders, ``ckpt=``, ``init_from=``, a resumed training state).

    Args:
        path: the file.
        mmap: map tensors instead of reading them (cheap when only the step is wanted);
            files of torch's legacy format are read whole.

    Raises:
        CheckpointError: no such file, not a torch file, a file that needs arbitrary code to
            unpickle, or one that holds something other than a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        checkpoint = _torch_load(path, mmap)
    except pickle.UnpicklingError as error:
        if "unsupported global" in str(error).lower():
            raise CheckpointError(
                f"{path} holds Python objects other than tensors and plain containers, which "
                f"are not loaded (they could run code); {FIX_FORMAT}"
            ) from None
        raise CheckpointError(f"{path} is not a torch checkpoint file; {FIX_FORMAT}") from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, ImportError):
        raise CheckpointError(f"{path} is not a torch checkpoint file; {FIX_FORMAT}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"{path} holds a {type(checkpoint).__name__}, not a dict; {FIX_FORMAT}"
        )
    return checkpoint


def _torch_load(path: Path, mmap: bool) -> Any:
    if mmap:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "zipfile" not in str(error):
                raise
    return torch.load(path, map_location="cpu", weights_only=True)


class StoredModel(NamedTuple):
    """What a checkpoint file holds, in our terms."""

    cfg: DictConfig | None  # model (the constructor tree) and what else the file knows (data,
    # enr, ...); None: the file stores no config (a .ckpt written before they did)
    state_dict: Mapping[str, Tensor]  # under TemporalNSRModule's keys ("renderer....")
    names: Mapping[str, str]  # our key -> the file's own name, for messages
    step: int | None  # the global step of a training state; None where the format has none
    rebuild: str  # how to build a model these weights fit, for an init_from= mismatch


class CheckpointFormat:
    """A kind of checkpoint file: subclass, set ``name``, decorate with ``@register_format``."""

    name: ClassVar[str]

    def recognises(self, checkpoint: Mapping[str, Any]) -> bool:
        """Whether a dict read by ``read_checkpoint`` is a file of this format."""
        raise NotImplementedError

    def read(self, checkpoint: Mapping[str, Any], path: Path) -> StoredModel:
        """Translate a file of this format; raise ``CheckpointError`` naming ``path``."""
        raise NotImplementedError


CHECKPOINT_FORMATS: dict[str, CheckpointFormat] = {}  # name -> format, in the order tried


def register_format(cls: type[CheckpointFormat]) -> type[CheckpointFormat]:
    """Class decorator: files that ``cls`` recognises load through it."""
    if cls.name in CHECKPOINT_FORMATS:
        raise ValueError(f"checkpoint format name {cls.name!r} is taken")
    CHECKPOINT_FORMATS[cls.name] = cls()
    return cls


def checkpoint_format(checkpoint: Mapping[str, Any], path: str | Path) -> CheckpointFormat:
    """The registered format of a loaded checkpoint (the first that recognises it).

    Raises:
        CheckpointError: no format does; the message lists the dict's keys.
    """
    for fmt in CHECKPOINT_FORMATS.values():
        if fmt.recognises(checkpoint):
            return fmt
    keys = sorted(str(k) for k in checkpoint)
    shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    raise CheckpointError(
        f"{path} has an unknown checkpoint format (a dict with keys [{shown}]); {FIX_FORMAT}"
    )


@register_format
class LightningFormat(CheckpointFormat):
    """Our own: a Lightning .ckpt written by ``temporal_nsr.train``, with its run's config
    under ``RUN_CONFIG`` (``training.checkpointing.StoreRunConfig``; none in older files)."""

    name = "lightning"

    def recognises(self, checkpoint: Mapping[str, Any]) -> bool:
        return "pytorch-lightning_version" in checkpoint and isinstance(
            checkpoint.get("state_dict"), Mapping
        )

    def read(self, checkpoint: Mapping[str, Any], path: Path) -> StoredModel:
        stored = checkpoint.get(RUN_CONFIG)
        return StoredModel(
            cfg=OmegaConf.create(stored) if isinstance(stored, Mapping) else None,
            state_dict=checkpoint["state_dict"],
            names={},
            step=int(checkpoint.get("global_step", 0)),
            rebuild="train with the config of the run that wrote it (its .hydra/config.yaml)",
        )


def first_mismatch(
    expected: Mapping[str, Tensor],
    given: Mapping[str, Tensor],
    names: Mapping[str, str] | None = None,
) -> str | None:
    """Describe the first parameter that differs between two state dicts, and how many do.

    Args:
        expected: the model's state dict.
        given: the checkpoint's, with the model's keys.
        names: our key -> the name the file gives it, added to the message where known.

    Returns:
        None when keys and shapes agree, else e.g. "renderer.x.weight has shape (2, 4) in
        the checkpoint but (3, 4) in the model (and 5 more mismatches)".
    """
    names = names or {}

    def called(key: str) -> str:
        return f"{key} (the file's {names[key]})" if key in names else key

    problems = []
    for key, value in expected.items():
        if key not in given:
            problems.append(f"the checkpoint has no {key} (shape {tuple(value.shape)})")
        elif given[key].shape != value.shape:
            problems.append(
                f"{called(key)} has shape {tuple(given[key].shape)} in the checkpoint but "
                f"{tuple(value.shape)} in the model"
            )
    problems += [f"the checkpoint has an extra {called(k)}" for k in given if k not in expected]
    if not problems:
        return None
    more = len(problems) - 1
    return problems[0] + (f" (and {more} more mismatch{'es' * (more > 1)})" if more else "")


def load_initial_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Start training from a checkpoint file's weights (``init_from=``), of any registered
    format. Only the weights are taken; optimizer, step and callbacks start fresh.

    Raises:
        CheckpointError: an unreadable file or format, or weights that do not fit the model
            built from the current config: the message names the first mismatched layer and
            how to build the file's architecture.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    stored = checkpoint_format(checkpoint, path).read(checkpoint, path)
    problem = first_mismatch(module.state_dict(), stored.state_dict, stored.names)
    if problem is not None:
        raise CheckpointError(
            f"init_from={path} does not fit the model: {problem}; {stored.rebuild}"
        )
    module.load_state_dict(stored.state_dict)


class Run(NamedTuple):
    """A loaded model and where it came from."""

    cfg: DictConfig  # the run's config: model (the constructor tree), data (none for an ENR
    # file), enr (an ENR file's own config and slot mapping)
    renderer: SceneRenderer  # in eval mode, on the requested device
    checkpoint: Path  # the file read
    step: int | None  # global step of a .ckpt; None for an ENR file


class TrainingState(NamedTuple):
    """Where a Lightning checkpoint stands, as stored in it."""

    global_step: int
    epoch: int


def training_state(path: Path) -> TrainingState:
    """The global step and epoch stored in a Lightning checkpoint (memory-mapped, cheap).

    Raises:
        CheckpointError: an unreadable file, or one without a global step.
    """
    checkpoint = read_checkpoint(path, mmap=True)
    if "global_step" not in checkpoint:
        raise CheckpointError(
            f"{path} stores no global_step: it is not a training checkpoint of temporal_nsr"
        )
    return TrainingState(int(checkpoint["global_step"]), int(checkpoint.get("epoch", 0)))


def furthest_checkpoint(run_dir: str | Path) -> Path | None:
    """The ``.ckpt`` of ``<run_dir>/checkpoints`` with the highest stored global step, or None.

    Ties (the best epoch and last.ckpt written at the same step) go to last.ckpt, then to the
    later epoch, then to the name. A file that vanishes meanwhile (a superseded best
    checkpoint) is skipped; one that cannot be read is an error.
    """
    ranked = {}
    for path in Path(run_dir, CHECKPOINT_DIR).glob("*.ckpt"):
        try:
            state = training_state(path)
        except CheckpointError:
            if path.exists():
                raise
            continue  # replaced by a better one meanwhile
        ranked[path] = (state.global_step, path.name == LAST, state.epoch, path.name)
    return max(ranked, key=ranked.__getitem__, default=None)


def _best_checkpoint(furthest: Path) -> Path | None:
    """The best file that a monitored ModelCheckpoint recorded in ``furthest``, if it exists.

    The recorded path is the one at training time; after a copy of the run folder the file
    is looked up by name beside ``furthest``.
    """
    callbacks = read_checkpoint(furthest, mmap=True).get("callbacks") or {}
    for state in callbacks.values():
        if isinstance(state, Mapping) and state.get("monitor") and state.get("best_model_path"):
            best = furthest.with_name(Path(state["best_model_path"]).name)
            if best.is_file():
                return best
    return None


def find_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """Resolve ``best`` / ``last`` / a path to a checkpoint file of ``run_dir`` (module docs).

    Raises:
        CheckpointError: no such file, or a run without checkpoints.
    """
    if which not in ("best", "last"):
        path = Path(which)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint {path}; pass checkpoint=best, last or a .ckpt")
        return path
    furthest = furthest_checkpoint(run_dir)
    if furthest is None:
        raise CheckpointError(
            f"no checkpoint in {Path(run_dir) / CHECKPOINT_DIR}; train the run first or pass "
            "checkpoint=<path>"
        )
    if which == "best":
        return _best_checkpoint(furthest) or furthest
    return furthest


DATA_ROOT_FILE = "data_root"  # <run>/data_root: the dataset folder as resolved in training


def write_data_root(run_dir: str | Path, root: str | Path) -> None:
    """Record where a run's data was (absolute), for a copy of the folder to find it."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_text(Path(run_dir) / DATA_ROOT_FILE, f"{Path(root).resolve()}\n")


def _data_root(cfg: DictConfig, run_dir: Path) -> None:
    """Point ``cfg.data.root`` at the run's dataset, IN PLACE, where the saved config does not.

    A saved config's ``data.root`` is relative to ``paths.root_dir`` (the checkout running
    the command, ``PROJECT_ROOT``); a run folder copied to another checkout or machine finds
    its data there if it exists, else at the absolute path recorded in training
    (``<run>/data_root``). Where neither exists, ``run_datamodule`` generates a generated
    dataset again (or names ``data.root=`` for one of the user's own). A ``data.root`` named
    from the generator config (``${dataset_folder:...}``) that the current code names
    differently, or cannot name, also falls back to the recorded folder.
    """
    data = cfg.get("data")
    if data is None or "root" not in data:
        return
    try:
        root = Path(data.root)
    except OmegaConfBaseException:  # unresolvable here: the recorded root decides
        root = None
    recorded = run_dir / DATA_ROOT_FILE
    if (root is None or not root.is_dir()) and recorded.is_file():
        saved = Path(recorded.read_text().strip())
        if saved.is_dir():
            log.info("data.root %s not found; using the run's recorded %s", root, saved)
            cfg.data.root = str(saved)


def _run_config(run_dir: Path) -> DictConfig:
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise CheckpointError(f"{run_dir} is not a training run folder (no .hydra/config.yaml)")
    cfg = OmegaConf.load(config)
    _data_root(cfg, run_dir)
    return cfg


# Classes outside temporal_nsr that a run's config may name (conf/ uses them); anything else
# outside the package is refused when a run is loaded.
ALLOWED_TARGETS = frozenset(
    {
        "torch.optim.Adam",
        "torch.optim.AdamW",
        "torch.optim.SGD",
        "lightning.Trainer",
        "lightning.pytorch.callbacks.ModelCheckpoint",
        "lightning.pytorch.callbacks.RichProgressBar",
        "lightning.pytorch.callbacks.RichModelSummary",
        "lightning.pytorch.loggers.CSVLogger",
        "lightning.pytorch.loggers.TensorBoardLogger",
        "lightning.pytorch.loggers.WandbLogger",
    }
)
_BUILDABLE = (torch.nn.Module, LightningDataModule)  # what a run's own classes may be


def _targets(node: Any, key: str) -> Iterator[tuple[str, Any]]:
    """Every ``_target_`` in a plain config tree, with the dotted key that holds it."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield key, node["_target_"]
        for name, child in node.items():
            yield from _targets(child, f"{key}.{name}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _targets(child, f"{key}[{i}]")


def check_targets(node: DictConfig, key: str, source: str | Path) -> None:
    """Refuse a run config node that names anything but temporal_nsr's models and data.

    A ``_target_`` is accepted only as a dotted name under ``temporal_nsr.`` that resolves to
    a class DEFINED in temporal_nsr deriving from ``torch.nn.Module`` or
    ``LightningDataModule`` (not a function, nor a name imported into the package such as
    ``temporal_nsr.x.subprocess.run``), or one of ``ALLOWED_TARGETS``. The name is checked
    before anything is imported, so a ``hubconf.py`` or any module outside the package beside
    the run never runs.

    Raises:
        CheckpointError: naming the file, the key and the target.
    """
    try:
        tree = OmegaConf.to_container(node, resolve=True)
    except Exception:  # an interpolation that does not resolve: check the raw strings
        tree = OmegaConf.to_container(node, resolve=False)
    for where, target in _targets(tree, key):
        if isinstance(target, str) and target in ALLOWED_TARGETS:
            continue
        ok = isinstance(target, str) and target.startswith("temporal_nsr.")
        if ok:
            try:
                found = _locate(target)  # imports temporal_nsr modules only
            except (ImportError, AttributeError, ValueError):
                found = None
            ok = (
                isinstance(found, type)
                and found.__module__.startswith("temporal_nsr.")
                and issubclass(found, _BUILDABLE)
            )
        if not ok:
            raise CheckpointError(
                f"{source}: {where}._target_={target!r} is not a temporal_nsr model or data "
                "class, so it is not instantiated (a run folder's config could run any code "
                "through it): use a run folder written by temporal_nsr.train"
            )


def _build(cfg: DictConfig, path: Path) -> SceneRenderer:
    """The network of ``cfg.model``, without the LightningModule around it."""
    check_targets(cfg.model.renderer, "model.renderer", path)
    try:
        return instantiate(cfg.model.renderer)
    except InstantiationException as error:  # wraps the model's ValueError
        raise CheckpointError(
            f"{path}: its config builds no temporal_nsr model ({error.__cause__ or error})"
        ) from None


def _run(
    cfg: DictConfig,
    stored: StoredModel,
    path: Path,
    recipe: Path | None,
    device: str,
    dtype: torch.dtype,
) -> Run:
    """The model of ``cfg`` with the weights of ``stored`` (read from ``path``), in eval mode on
    ``device`` in ``dtype``, logged in the one line of this load; ``recipe``: the config file
    ``cfg`` came from, None for the file's own."""
    renderer = _build(cfg, path)
    expected = {RENDERER + k: v for k, v in renderer.state_dict().items()}
    problem = first_mismatch(expected, stored.state_dict, stored.names)
    if problem is not None:
        where, fix = (
            (f"the model of {recipe}", "was it trained with another config?")
            if recipe is not None
            else ("the model its own config describes", "the file's config and weights disagree")
        )
        raise CheckpointError(f"checkpoint {path} does not fit {where}: {problem}; {fix}")
    renderer.load_state_dict({k[len(RENDERER) :]: v for k, v in stored.state_dict.items()})
    renderer = renderer.to(device, dtype).eval()
    at = f"global step {stored.step}" if stored.step is not None else "no training step"
    log.info("loaded %s (%s) on %s, weights %s", path, at, device, str(dtype).split(".")[-1])
    return Run(cfg, renderer, path, stored.step)


def load_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Run:
    """Rebuild a run's model from its run folder's config and load a checkpoint's weights.

    The folder's ``.hydra/config.yaml`` is the recipe (and says where the run's data is, see
    ``_data_root``), whatever config the .ckpt stores.

    Args:
        run_dir: a training run folder.
        checkpoint: best, last or a path (module docs).
        device: where the network goes.
        dtype: the network's weights (``acceleration.inference_dtype``).

    Raises:
        CheckpointError: no run folder (no ``.hydra/config.yaml``), no such checkpoint, an
            unreadable one or one that needs code to load, or one trained with another config
            (names the first differing parameter).
    """
    run_dir = Path(run_dir)
    cfg = _run_config(run_dir)  # a missing recipe is the first thing to report
    path = find_checkpoint(run_dir, checkpoint)
    state = read_checkpoint(path)
    fmt = checkpoint_format(state, path)
    if not isinstance(fmt, LightningFormat):
        raise CheckpointError(
            f"{path} is not a Lightning checkpoint of this run; pass checkpoint=<a .ckpt in "
            f"{run_dir / CHECKPOINT_DIR}> or ckpt={path}"
        )
    recipe = run_dir / ".hydra" / "config.yaml"
    return _run(cfg, fmt.read(state, path), path, recipe, device, dtype)


def load_checkpoint(
    path: str | Path, device: str = "cpu", dtype: torch.dtype = torch.float32
) -> Run:
    """Load a checkpoint file alone, reading it once: a .ckpt written by ``temporal_nsr.train``
    (its own stored config), an original ENR / temporal-ENR file (a run with no ``data``) or a
    file of any other registered format. A .ckpt from before checkpoints stored their config
    takes its run folder's (the file sits in ``<run>/checkpoints/`` beside
    ``<run>/.hydra/config.yaml``).

    Raises:
        CheckpointError: unreadable file or unknown format, an old .ckpt outside its run
            folder, or weights that do not fit their config.
    """
    path = Path(path)
    checkpoint = read_checkpoint(path)
    stored = checkpoint_format(checkpoint, path).read(checkpoint, path)
    if stored.cfg is not None:
        return _run(stored.cfg, stored, path, None, device, dtype)
    run_dir = path.resolve().parent.parent
    config = run_dir / ".hydra" / "config.yaml"
    if not config.is_file():
        raise CheckpointError(
            f"{path} stores no config (a .ckpt written before checkpoints stored theirs) and "
            f"{config}, the recipe of its model, is missing; keep the file in "
            "<run>/checkpoints/ of its run folder (or pass run_dir=<run> checkpoint=<file>)"
        )
    return _run(_run_config(run_dir), stored, path, config, device, dtype)


def load_model(
    run_dir: str | Path | None,
    ckpt: str | Path | None,
    checkpoint: str = "best",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Run:
    """The model named by exactly one of ``run_dir`` (with ``checkpoint``: best, last or a
    path) and ``ckpt`` (a checkpoint file, see ``load_checkpoint``): the commands'
    ``run_dir=`` / ``ckpt=`` pair (``conf/source/default.yaml``).

    Raises:
        CheckpointError: neither or both given, a bad run folder or a bad file.
    """
    if (run_dir is None) == (ckpt is None):
        raise CheckpointError(
            "give run_dir=<training run folder> or ckpt=<checkpoint file> (an original ENR "
            "file or a .ckpt of ours), exactly one of them"
        )
    if ckpt is not None:
        return load_checkpoint(ckpt, device, dtype)
    return load_run(run_dir, checkpoint, device, dtype)


def output_dir(
    cfg: DictConfig,
    model_cfg: DictConfig | None,
    checkpoint: Path | None,
    folder: str,
    sub: str | None = None,
) -> Path:
    """Where a command (evaluate, render, export) writes for a loaded model, the one rule:
    ``out_dir=``; without it ``<run_dir>/<folder>/<sub>`` with ``run_dir=``, else the command's
    Hydra output folder (``paths.output_dir``) ``/<sub>``. Checked so that writing there can
    destroy nothing of the run or its data.

    Args:
        cfg: the command's config: ``run_dir``, ``out_dir``, ``paths.output_dir``.
        model_cfg: the model's config (``Run.cfg``); its ``data.root`` is protected.
        checkpoint: the file the model came from.
        folder: the command's folder in a run folder (``eval``, ``render``, ``export``).
        sub: a folder below either default (export's format).

    Refused: an ``out_dir`` equal to or containing the run folder or the checkpoint file, one
    equal to, inside or containing the run's dataset, and a folder under the run folder that a
    symbolic link leads out of it.

    Raises:
        FolderError: naming the folder and what it overlaps.
    """
    run_dir, out_dir = cfg.get("run_dir"), cfg.get("out_dir")
    if out_dir:
        out = Path(out_dir)
    else:
        default = Path(run_dir) / folder if run_dir is not None else Path(cfg.paths.output_dir)
        out = default / (sub or "")
    if run_dir is not None:
        check_separate(out, Path(run_dir), "the run folder", inside_ok=True)
        if not out_dir or out.absolute().is_relative_to(Path(run_dir).absolute()):
            inside(out, Path(run_dir))
    if checkpoint is not None:
        check_separate(out, checkpoint, "the checkpoint")
    root = ((model_cfg or {}).get("data") or {}).get("root")
    if root:
        check_separate(out, Path(root), "the dataset")
    return out


def run_datamodule(cfg: DictConfig) -> ViewPairDataModule:
    """The data of a loaded run (``Run.cfg``, ``NovelViewRenderer.config``) as its training saw
    it: ``run_datamodule(run.cfg).split("test")`` opens one split.

    A generated dataset whose folder is missing here is generated again from the run's
    ``data.generator`` (the same bytes for the same generator version), into the folder named
    from that config beside the missing one (`temporal_nsr.data.folders.dataset_folder`;
    ``cfg.data.root`` is pointed there, IN PLACE): that folder belongs to this config alone, so
    no other run's data is touched.

    Raises:
        CheckpointError: the config names no dataset (an ENR file's, without ``data=``), or a
            missing dataset folder that no generator config describes.
    """
    data = cfg.get("data")
    if data is None or "root" not in data or "_target_" not in data:
        source = OmegaConf.select(cfg, "enr.checkpoint", default=None) or "the model"
        raise CheckpointError(
            f"{source} names no dataset (an original ENR file): render it with image=<image "
            "file>, evaluate it with data=bend data.root=<dataset folder with train/ and the "
            "splits> (data.static=true for a static dataset such as ENR's chairs)"
        )
    plain = OmegaConf.masked_copy(data, [k for k in data if k != "generator"])  # not built
    check_targets(plain, "data", "the run's config")
    root = Path(data.root)
    if not root.is_dir():
        if data.get("generator") is None:
            raise CheckpointError(
                f"the run's dataset {root} does not exist here: evaluate with data=<name> "
                "data.root=<dataset folder>, render with image=<file>, or set PROJECT_ROOT to "
                "the checkout holding its data/"
            )
        generator = OmegaConf.to_container(data.generator, resolve=True)
        folder = dataset_folder(root.parent, data.name, generator)
        log.info(
            "the run's dataset %s is missing: generating it from its config into %s", root, folder
        )
        own = {"name": data.name, "root": str(folder), "generator": generator}
        prepare_dataset(OmegaConf.create(own))
        data.root = str(folder)
    return instantiate(data, generator=None)  # a _target_ in it is never built


# Each module registers its format on import (ours, LightningFormat, is defined above).
from temporal_nsr import enr_checkpoint  # noqa: E402, F401
