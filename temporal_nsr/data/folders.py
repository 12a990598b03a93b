"""Where a dataset lives: a generated dataset's folder is named from its generator config.

A generated dataset's folder is ``<data_dir>/<name>-<digest>`` (`dataset_folder`): ``name`` is
``data.name``, a readable prefix, and the digest the first `DIGEST_CHARS` hex digits of the
SHA-256 of everything that decides its bytes: `writer.GENERATOR_VERSION` and the resolved
``GeneratorConfig.to_dict()`` (backend and its settings included), as canonical JSON (sorted
keys, no spaces). Two configs that differ in any key therefore never share a folder, so no run
can regenerate another run's data; the same config names the same folder in every process,
whatever the order of its keys and whichever defaults it spells out. ``conf/data/bend.yaml``
sets ``data.root: ${dataset_folder:${paths.data_dir},${data.name},${data.generator}}``; a
``data.root`` given by hand (a user's own ENR-format dataset, with ``data.generator=null``) is
used as it is, and never replaced when it holds another config's dataset.

Generation is a step of its own (`prepare_dataset`), which ``train`` and
``python -m temporal_nsr.data.generate`` call before anything reads the folder; processes that
prepare one folder at once take turns (`folder_lock`), so the second reuses what the first made.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from temporal_nsr.atomic import FolderError
from temporal_nsr.data.errors import DatasetError
from temporal_nsr.data.synthetic import writer
from temporal_nsr.data.synthetic.config import GeneratorConfig, resolve_config

DIGEST_CHARS = 10  # hex digits of the folder's digest: 40 bits, no collision among real configs
NO_GENERATOR = (
    "data.generator is null, so no dataset is generated: set data.root=<your dataset folder> "
    "(with train/, val/, test/), or give data.generator"
)


Generator = Mapping[str, Any] | DictConfig | GeneratorConfig  # a data.generator, in any form


def _plain(generator: Generator) -> dict[str, Any] | GeneratorConfig:
    """What `resolve_config` reads: a plain mapping, or a config resolved already."""
    if isinstance(generator, DictConfig):
        return OmegaConf.to_container(generator, resolve=True)
    return generator if isinstance(generator, GeneratorConfig) else dict(generator)


def config_digest(generator: Generator) -> str:
    """The hex digest naming the dataset of a ``data.generator`` mapping (module docs).

    Raises:
        GeneratorConfigError: a key or value the generator cannot use.
    """
    config = resolve_config(_plain(generator)).to_dict()
    content = {"generator_version": writer.GENERATOR_VERSION, "config": config}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def dataset_folder(data_dir: str | Path, name: str, generator: Generator | None) -> Path:
    """The folder of the dataset that ``generator`` makes: ``<data_dir>/<name>-<digest>``.

    Args:
        data_dir: where datasets live (``paths.data_dir``).
        name: ``data.name``, the folder's readable prefix.
        generator: the ``data.generator`` mapping (missing keys take the YAML defaults) or
            its resolved `GeneratorConfig`.

    Raises:
        DatasetError: ``generator`` is None (a dataset of your own has no generated folder).
        GeneratorConfigError: a key or value the generator cannot use.
    """
    if generator is None:
        raise DatasetError(NO_GENERATOR)
    return Path(data_dir) / f"{name}-{config_digest(generator)}"


OmegaConf.register_new_resolver(
    "dataset_folder", lambda *args: str(dataset_folder(*args)), replace=True
)


@contextmanager
def folder_lock(root: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``root`` (a hidden ``.<name>.lock`` file beside it, removed on
    release), waiting while another process holds it. The kernel drops a lock when its process
    ends, killed or not."""
    lock = root.with_name(f".{root.name}.lock")
    root.parent.mkdir(parents=True, exist_ok=True)
    while True:
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:  # the holder before us removed the file it locked: lock the one there now
                current = os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino
            except FileNotFoundError:
                current = False
            if current:
                try:
                    yield
                finally:
                    lock.unlink(missing_ok=True)  # while still held: waiters then start over
                return


def generator_config(data: DictConfig) -> GeneratorConfig | None:
    """The validated ``data.generator`` of a ``data`` node; None for a dataset of your own.

    Call it before reading ``data.root``: a bad key is then its own one-line error, not one
    wrapped by the ``${dataset_folder:...}`` resolver that names the folder from it.

    Raises:
        GeneratorConfigError: a key or value the generator cannot use.
    """
    generator = data.get("generator")
    return None if generator is None else resolve_config(_plain(generator))


def prepare_dataset(data: DictConfig, force: bool = False) -> Path:
    """Make the dataset of a ``data`` config ready at ``data.root``; return that folder.

    With a ``data.generator`` the folder is reused when its manifest matches, generated when it
    is missing or empty, and regenerated when stale only if it is the config's own folder
    (`dataset_folder`): a ``data.root`` given by hand that holds another config's dataset is
    refused, never replaced (``force``: always regenerate). Without a generator the folder must
    exist. Every process (DDP ranks, concurrent runs of one config) may call it: they take
    turns on the folder.

    Args:
        data: the ``data`` node (``root``, ``name``, ``generator``).
        force: regenerate, and replace a folder that holds files but no manifest.

    Raises:
        DatasetError: no folder and no generator, a folder of other files (no manifest), or
            a ``data.root`` given by hand that holds the dataset of another generator config.
        GeneratorConfigError: a generator setting the generator cannot use.
    """
    # The generator (and its ray tracer) is imported only where a dataset is made.
    from temporal_nsr.data.synthetic.generator import ensure_dataset, generate_dataset

    generator = generator_config(data)
    try:
        root = Path(data.root)
    except OmegaConfBaseException:
        if generator is None:  # the generated folder's name, of no generator
            raise DatasetError(NO_GENERATOR) from None
        raise
    if generator is None:
        if not root.is_dir():
            raise DatasetError(
                f"dataset folder {root} does not exist and data.generator is null: set "
                "data.root to an existing dataset, or give data.generator to generate it"
            )
        return root
    with folder_lock(root):
        own = root == dataset_folder(root.parent, str(data.get("name")), generator)
        reason = writer.stale_reason(root, generator)
        if not (own or force) and reason is not None and writer.read_manifest(root) is not None:
            raise DatasetError(
                f"data.root={root} is not the folder of this generator config and is not "
                f"replaced: {reason}; leave data.root unset (each config gets its own folder) "
                "or point it at another folder"
            )
        try:
            if force:
                return generate_dataset(root, generator, force=True)
            return ensure_dataset(root, generator)
        except FolderError:
            raise DatasetError(
                f"data.root={root} holds files but no manifest.json of the generator, so it is "
                "not regenerated: to train on it as it is (e.g. your own ENR-format dataset) "
                "set data.generator=null, else point data.root at another folder"
            ) from None
