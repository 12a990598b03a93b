"""errors.py: one base class for what a user can fix, one place that makes it a line."""

from __future__ import annotations

import errno
import importlib
import inspect
import pkgutil

import pytest

import temporal_nsr
from temporal_nsr.errors import UserError, one_line_errors

# Modules that are not part of the library's import graph: Blender's own script (imports bpy).
NOT_IMPORTABLE = {"temporal_nsr.data.synthetic.blender_scene"}


def _error_classes() -> list[type[BaseException]]:
    """Every exception class whose name ends in Error defined in the package."""
    found = []
    for info in pkgutil.walk_packages(temporal_nsr.__path__, "temporal_nsr."):
        if info.name in NOT_IMPORTABLE or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and name.endswith("Error")
            ):
                found.append(value)
    return found


def test_every_error_class_of_the_package_is_a_user_error() -> None:
    classes = _error_classes()
    names = {c.__name__ for c in classes}
    assert {"CheckpointError", "DatasetError", "FolderError", "GeneratorConfigError"} <= names
    assert [c.__qualname__ for c in classes if not issubclass(c, UserError)] == []


def test_one_line_errors_prints_the_command_and_the_message() -> None:
    with pytest.raises(SystemExit) as stop, one_line_errors("render"):
        raise UserError("bar.png does not exist")
    assert stop.value.code == "render: bar.png does not exist"  # status 1, on stderr
    assert stop.value.__cause__ is None and stop.value.__suppress_context__
    full = pytest.raises(SystemExit, match=r"^train: no space left on the device writing /x")
    with full, one_line_errors("train"):
        raise OSError(errno.ENOSPC, "No space left on device", "/x")


@pytest.mark.parametrize("error", [ValueError("a bug"), OSError(errno.EACCES, "denied")])
def test_one_line_errors_passes_everything_else(error: Exception) -> None:
    with pytest.raises(type(error)), one_line_errors("render"):
        raise error
