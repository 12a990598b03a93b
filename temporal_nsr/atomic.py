"""Atomic writes: a reader sees the old file or folder or the new one, never half of either.

Write through ``atomic_file(path)`` or ``atomic_folder(path)``: each hands out a hidden sibling
to write, renames it into place when the block ends normally and removes it when the block
raises (a crash or Ctrl-C included), so only finished results ever carry the real name.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unique name beside ``path``: ``.<name>.<kind>-<pid>-<random>``."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends normally.

    The parent folder must exist. The temporary file is removed if the block raises.
    """
    path = Path(path)
    tmp = _sibling(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder to fill; it replaces ``path`` when the block ends normally.

    The parent folder is created. An older ``path`` is swapped out whole (``replace_folder``);
    the staging folder is removed if the block raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(path, "tmp")
    staging.mkdir()
    try:
        yield staging
        replace_folder(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def replace_folder(staging: Path, target: Path) -> None:
    """Swap the finished ``staging`` folder in as ``target``, replacing an older one.

    The old folder is renamed aside first and removed after the swap, so ``target`` is never
    a partial folder (only briefly absent).
    """
    old = _sibling(target, "old")
    if target.exists() or target.is_symlink():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
