"""Compose the project's Hydra configs outside `@hydra.main` (tests, benchmarks, notebooks)."""

from __future__ import annotations

import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from temporal_nsr import CONF_DIR
from temporal_nsr.data import folders  # noqa: F401  (registers ${dataset_folder:...})
from temporal_nsr.errors import UserError, one_line_errors


def _beside_run(run_dir: str | None, task: str, default: str) -> str:
    """``${beside_run:run_dir,task,default}`` (conf/hydra/inference.yaml): a command's Hydra
    folder, ``<run_dir>/logs/<task>/<date>_<time>`` given a run folder, else ``default``."""
    if run_dir in (None, "None", "null", ""):
        return default
    return str(Path(run_dir) / "logs" / task / Path(default).name)


OmegaConf.register_new_resolver("beside_run", _beside_run, replace=True)


def compose_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """Compose `conf/<config_name>.yaml` as the CLI would, with ${hydra:...} resolvable.

    Args:
        overrides: command-line style overrides, e.g. ["experiment=tiny", "logger=none"].
        config_name: the entry point's primary config.
    """
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        cfg = compose(config_name, return_hydra_config=True, overrides=overrides)
    HydraConfig().set_config(cfg)  # lets ${hydra:...} resolve outside @hydra.main
    return cfg


class UnknownKeyError(UserError):
    """A command-line override naming a key the config does not have; the one-line message
    names the valid keys."""


def _valid_keys(cfg: DictConfig, key: str) -> str:
    """The keys beside ``key`` (a dotted path) in ``cfg``, or beside its nearest existing
    parent, for an error message."""
    parent = key.rpartition(".")[0]
    while parent and not isinstance(OmegaConf.select(cfg, parent), DictConfig):
        parent = parent.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent) if parent else cfg
    where = f" of {parent}" if parent else ""
    return f"valid keys{where}: {', '.join(k for k in node if k != 'hydra')}"


def check_overrides(config_name: str, arguments: list[str]) -> None:
    """Refuse command-line overrides of keys that ``conf/<config_name>.yaml`` does not have.

    Hydra rejects ``azimuth=30`` with a multi-line hint to write ``+azimuth=30``, and then
    accepts ``+azimuth=30`` (or ``++azimuth=30``) as a new key that nothing reads. Both are an
    ``UnknownKeyError`` here. Adding a config group (``+data=bend``, a folder of conf/) and
    ``hydra.*`` keys stay allowed; under ``-m`` (sweep values) nothing is checked.

    Args:
        config_name: the entry point's primary config (render, evaluate, export, viewer).
        arguments: the command line after the module (``sys.argv[1:]``).

    Raises:
        UnknownKeyError: the first unknown key, with the valid keys beside it.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    if {"-m", "--multirun"} & set(arguments):
        return
    texts = [
        a for a in arguments if not a.startswith("-") and a.lstrip("+~").split(".")[0] != "hydra"
    ]
    try:
        overrides = OverridesParser.create().parse_overrides(texts)
    except HydraException:
        return  # Hydra reports a malformed override itself
    changes = [o.input_line for o in overrides if o.type in (OverrideType.CHANGE, OverrideType.DEL)]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF_DIR)):
        try:
            base = compose(config_name, overrides=changes)
        except HydraException as error:
            match = re.search(r"Could not override '([^']+)'", str(error))
            if match is None:
                return  # another composition error: Hydra reports it in full
            key = match.group(1)
            rest = [c for c in changes if not c.split("=", 1)[0].lstrip("~").endswith(key)]
            try:
                base = compose(config_name, overrides=rest)
            except HydraException:
                base = compose(config_name)
            raise UnknownKeyError(f"unknown key {key!r}; {_valid_keys(base, key)}") from None
    for override in overrides:
        key = override.key_or_group
        if override.type == OverrideType.ADD and _exists(base, key):
            value = override.input_line.split("=", 1)[-1]
            raise UnknownKeyError(f"{key!r} is a key already: write {key}={value} (no +)")
        if override.type == OverrideType.ADD and not (CONF_DIR / key).is_dir():
            raise UnknownKeyError(
                f"unknown key {key!r} ({override.input_line} adds a key that nothing reads); "
                f"{_valid_keys(base, key)}"
            )
        if override.type == OverrideType.FORCE_ADD and not _exists(base, key):
            raise UnknownKeyError(f"unknown key {key!r}; {_valid_keys(base, key)}")


def _exists(cfg: DictConfig, key: str) -> bool:
    """Whether the dotted ``key`` is a key of ``cfg`` (its value may be None)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    return isinstance(node, DictConfig) and leaf in node


def strict_command_line(config_name: str, arguments: list[str]) -> None:
    """``check_overrides`` for an entry point's ``__main__``: exit with a one-line error."""
    with one_line_errors(config_name):
        check_overrides(config_name, arguments)


def config_tree(cfg: DictConfig) -> str:
    """The composed config as YAML, one block per top-level key (``hydra`` left out), values
    resolved where they can be: what a run will use, printed when ``train`` starts."""
    keys = [k for k in cfg if k != "hydra"]
    try:
        tree = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=True)
    except OmegaConfBaseException:  # an interpolation that resolves only later: print as is
        tree = OmegaConf.to_container(OmegaConf.masked_copy(cfg, keys), resolve=False)
    return OmegaConf.to_yaml(tree)
