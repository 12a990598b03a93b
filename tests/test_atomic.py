"""atomic.py: whole files and folders, and the rule that a command replaces only its own folders."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from temporal_nsr.atomic import (
    FolderError,
    atomic_file,
    atomic_folder,
    check_separate,
    inside,
    remove_leftovers,
)
from temporal_nsr.errors import disk_full


def _write(folder: Path, marker: str = "made.json") -> None:
    (folder / "result.txt").write_text("new")
    (folder / marker).write_text("{}")


def test_a_folder_of_other_files_is_never_replaced(tmp_path: Path) -> None:
    target = tmp_path / "thesis"
    target.mkdir()
    (target / "thesis.txt").write_text("three years of work")
    refused = pytest.raises(FolderError, match=r"thesis holds files .*no made.json.*force=true")
    with refused, atomic_folder(target, marker="made.json") as staging:
        _write(staging)
    assert (target / "thesis.txt").read_text() == "three years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis"]  # no staging left
    # A file or a link where the folder goes is refused the same way.
    link = tmp_path / "link"
    link.symlink_to(target)
    for path in (target / "thesis.txt", link):
        refused = pytest.raises(FolderError, match="force=true")
        with refused, atomic_folder(path, marker="made.json") as staging:
            _write(staging)
    assert (target / "thesis.txt").is_file()


def test_own_empty_or_forced_folders_are_replaced(tmp_path: Path) -> None:
    target = tmp_path / "out"
    for _ in range(2):  # new, then the command's own (it holds the marker)
        with atomic_folder(target, marker="made.json") as staging:
            _write(staging)
    (target / "made.json").unlink()
    (target / "mine.txt").write_text("x")
    with atomic_folder(target, marker="made.json", force=True) as staging:
        _write(staging)
    assert sorted(p.name for p in target.iterdir()) == ["made.json", "result.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with atomic_folder(empty, marker=None) as staging:
        _write(staging)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


def test_outputs_stay_apart_from_what_they_could_destroy(tmp_path: Path) -> None:
    run, data = tmp_path / "run", tmp_path / "data"
    run.mkdir(), data.mkdir()
    for out in (run, tmp_path):
        with pytest.raises(FolderError, match=f"out_dir={out} overlaps the run folder {run}"):
            check_separate(out, run, "the run folder", inside_ok=True)
    check_separate(run / "export", run, "the run folder", inside_ok=True)
    with pytest.raises(FolderError, match="overlaps the dataset"):
        check_separate(data / "train" / "x", data, "the dataset")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "export").symlink_to(elsewhere)
    with pytest.raises(FolderError, match="leads outside .*symbolic link"):
        inside(run / "export" / "onnx", run)


def test_leftovers_of_killed_writers_are_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    target = tmp_path / "bend64"
    stale = [tmp_path / f".bend64.old-{dead.pid}-0a1b2c3d", tmp_path / f".bend64.tmp-{dead.pid}-ff"]
    for path in stale:
        (path / "train").mkdir(parents=True)
    alive = tmp_path / f".bend64.tmp-{os.getpid()}-00"  # a writer still running: kept
    alive.mkdir()
    assert sorted(remove_leftovers(target)) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name]


def test_a_full_disk_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "result.bin"
    with pytest.raises(OSError) as raised, atomic_file(target) as tmp:
        tmp.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")  # what write() raises
    assert raised.value.filename == str(target)
    line = disk_full(raised.value)
    assert line.startswith(f"no space left on the device writing {target}, ")
    assert "MB free there" in line and "\n" not in line
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(OSError), atomic_folder(tmp_path / "folder", marker=None) as staging:
        (staging / "a").write_text("x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    assert disk_full(OSError(errno.EACCES, "denied")) is None
