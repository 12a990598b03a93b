"""Atomic writes: a reader sees the old file or folder or the new one, never half of either."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to a hidden sibling, then rename it over ``path``."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a hidden sibling, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def replace_folder(staging: Path, target: Path) -> None:
    """Swap the finished ``staging`` folder in as ``target``, replacing an older one.

    The old folder is renamed aside first and removed after the swap, so ``target`` is never
    a partial folder (only briefly absent).
    """
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
    if target.exists() or target.is_symlink():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
