"""Atomic writes: a reader sees the old file or folder or the new one, never half of either.

Write through ``atomic_file(path)`` or ``atomic_folder(path, marker=...)``: each hands out a
hidden sibling to write, renames it into place when the block ends normally and removes it
when the block raises (a crash or Ctrl-C included), so only finished results ever carry the
real name.

A folder is replaced only when the same command wrote it before: ``atomic_folder`` refuses an
existing non-empty folder that lacks the command's ``marker`` file (``export.json``, the
generator's ``manifest.json``, ...) unless ``force=True``, so a command pointed at a user's own
folder never deletes it. Leftovers of killed writers (``.<name>.tmp-<pid>-*``,
``.<name>.old-<pid>-*`` whose process is gone) are removed at the next write of the same path.
A full disk is an ``OSError(ENOSPC)`` naming the file; ``errors.disk_full`` words it in one line.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from temporal_nsr.errors import UserError

log = logging.getLogger(__name__)


class FolderError(UserError):
    """A folder a command will not write or replace; the message names it and the fix."""


def _sibling(path: Path, kind: str) -> Path:
    """A hidden, unique name beside ``path``: ``.<name>.<kind>-<pid>-<random>``."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(path: Path) -> list[Path]:
    """Remove the hidden siblings (``_sibling``) of ``path`` that killed processes left.

    Returns:
        The removed paths.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(tmp|old)-(\d+)-[0-9a-f]+")
    removed = []
    if not path.parent.is_dir():
        return removed
    for sibling in path.parent.iterdir():
        match = pattern.fullmatch(sibling.name)
        if match is None or pid_alive(int(match[2])):
            continue
        log.info("removing %s, left by an interrupted write", sibling)
        if sibling.is_dir() and not sibling.is_symlink():
            shutil.rmtree(sibling, ignore_errors=True)
        else:
            sibling.unlink(missing_ok=True)
        removed.append(sibling)
    return removed


def check_replaceable(path: Path, marker: str | None, force: bool = False) -> None:
    """Refuse to replace ``path`` unless it is absent, empty, or a folder this command wrote.

    Args:
        path: the folder a command is about to replace.
        marker: the file the command writes into every folder it makes (e.g. ``export.json``);
            None: only an absent or empty folder is replaced.
        force: replace whatever is there.

    Raises:
        FolderError: ``path`` is a file, a link, or a non-empty folder without ``marker``.
    """
    if force or not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        kind = "a symbolic link" if path.is_symlink() else "a file"
        raise FolderError(
            f"{path} is {kind}, not a folder this command wrote: choose another output folder, "
            "or pass force=true to replace it"
        )
    if not any(path.iterdir()) or (marker is not None and (path / marker).is_file()):
        return
    has = f"no {marker}" if marker is not None else "files"
    raise FolderError(
        f"{path} holds files this command did not write ({has}): choose another output folder, "
        "or pass force=true to replace it"
    )


def check_separate(out: Path, folder: Path, what: str, *, inside_ok: bool = False) -> None:
    """Refuse an output folder equal to, containing, or (unless ``inside_ok``) inside ``folder``.

    Args:
        out: the output folder a command would replace.
        folder: what must survive: a run folder, a dataset, a checkpoint file.
        what: its description in the message ("the run folder").
        inside_ok: allow ``out`` below ``folder`` (a run's own ``export/``, ``render/``).

    Raises:
        FolderError: naming both.
    """
    out_r, folder_r = Path(out).resolve(), Path(folder).resolve()
    below = out_r.is_relative_to(folder_r) and out_r != folder_r
    if folder_r.is_relative_to(out_r) or (below and not inside_ok):
        raise FolderError(
            f"out_dir={out} overlaps {what} {folder}; writing there could replace it: choose "
            "an out_dir outside it"
        )


def inside(path: Path, folder: Path) -> Path:
    """``path`` (under ``folder``), refused when a symbolic link leads it out of ``folder``.

    Raises:
        FolderError: ``path`` resolves outside ``folder``.
    """
    if not Path(path).resolve().is_relative_to(Path(folder).resolve()):
        raise FolderError(
            f"{path} leads outside {folder} (a symbolic link): outputs stay inside the run "
            "folder; remove the link or pass out_dir=<folder>"
        )
    return Path(path)


def _name_disk_full(error: OSError, path: Path) -> None:
    """Raise a disk-full ``error`` again naming ``path`` (a write() reports no file name)."""
    if error.errno == errno.ENOSPC and error.filename is None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error


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
    except OSError as error:
        _name_disk_full(error, path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_folder(path: str | Path, *, marker: str | None, force: bool = False) -> Iterator[Path]:
    """Yield an empty staging folder to fill; it replaces ``path`` when the block ends normally.

    The parent folder is created. An older ``path`` is swapped out whole (``replace_folder``)
    only if this command wrote it (``check_replaceable``: it holds ``marker``) or ``force``;
    the check runs before the block, so nothing is computed for a refused folder. The staging
    folder is removed if the block raises.

    Args:
        path: the folder to write.
        marker: the file the block writes into the staging folder that marks it as this
            command's; None: ``path`` must be absent or empty.
        force: replace whatever ``path`` holds.

    Raises:
        FolderError: ``path`` holds something else (see ``check_replaceable``).
    """
    path = Path(path)
    check_replaceable(path, marker, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    staging = _sibling(path, "tmp")
    staging.mkdir()
    try:
        yield staging
        replace_folder(staging, path)
    except OSError as error:
        _name_disk_full(error, path)
        raise
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
    a partial folder (only briefly absent); a link at ``target`` is replaced, never followed.
    """
    old = _sibling(target, "old")
    if target.exists() or target.is_symlink():
        os.replace(target, old)
    os.replace(staging, target)
    if old.is_symlink() or old.is_file():
        old.unlink()
    else:
        shutil.rmtree(old, ignore_errors=True)
