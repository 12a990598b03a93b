"""The README and docs/ point only at things that exist: linked files, and the code paths and
module names they write in backticks."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)
FENCE = re.compile(r"^\s*(```|~~~)")
SPAN = re.compile(r"`([^`\n]+)`")  # inline code
COMMAND = re.compile(r"python -m (temporal_nsr(?:\.\w+)*)")
PATH_PREFIXES = ("temporal_nsr/", "conf/", "tests/", "docs/")
PACKAGE_FILE = re.compile(r"[\w/]+\.py(:\w+)?")  # training/module.py, render.py:render_figures
NOT_A_NAME = set("<>*{}[]$=")  # placeholders, globs, brace lists, variables, options


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_point_to_files(page: Path) -> None:
    targets = [m.group(1) for m in LINK.finditer(page.read_text())]
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:|#", t)]
    missing = [t for t in local if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def _code(page: Path) -> list[tuple[int, str, bool, bool]]:
    """(line number, text, inline, struck out) of every inline code span and fenced code line."""
    found, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif fenced:
            found.append((number, line, False, False))
        else:
            for m in SPAN.finditer(line):
                struck = line[: m.start()].endswith("~~") and line[m.end() :].startswith("~~")
                found.append((number, m.group(1).strip(), True, struck))
    return found


def names_in(page: Path) -> list[tuple[int, str, bool]]:
    """(line number, name, struck out) of the repository paths and module names a page writes
    in code.

    The rule, chosen so that every hit must exist in a checkout:

    * an inline code span that starts with ``temporal_nsr/``, ``conf/``, ``tests/`` or
      ``docs/`` is a path from the repository root;
    * an inline code span naming a ``.py`` file without one of those prefixes
      (``training/module.py``, ``render.py``) is a path inside the package ``temporal_nsr/``;
    * a path may end in ``:name`` (a function, class, method or variable the file itself
      defines, not one it imports) or ``:123`` (a line number, not checked);
    * an inline code span that starts with ``temporal_nsr.`` is a dotted module name, possibly
      followed by a name the module defines or imports (``temporal_nsr.acceleration.bf16_pays``,
      ``temporal_nsr.inference.NovelViewRenderer.from_run(run_dir)``: a trailing call is
      dropped);
    * ``python -m temporal_nsr.<module>`` in an inline span or a fenced code block names a
      module;
    * a candidate holding whitespace or any of ``< > * { } [ ] $ =`` is skipped: placeholders
      (``conf/data/<name>.yaml``), globs (``docs/*/results.json``), brace lists, variables
      and ``key=value`` options are not names. Run outputs (``outputs/...``, ``metrics.json``)
      are not checked;
    * a span struck out, ``~~`temporal_nsr.lit_module`~~``, names something removed (a note
      on a rename): it must NOT exist.
    """
    names = []
    for number, text, inline, struck in _code(page):
        names += [(number, m.group(1), False) for m in COMMAND.finditer(text)]
        if not inline or text.startswith("python -m "):
            continue
        candidate = re.sub(r"\(.*\)$", "", text)
        if PACKAGE_FILE.fullmatch(candidate) and not candidate.startswith(PATH_PREFIXES):
            candidate = f"temporal_nsr/{candidate}"
        elif not candidate.startswith((*PATH_PREFIXES, "temporal_nsr.")):
            continue
        if NOT_A_NAME.isdisjoint(candidate) and not re.search(r"\s", candidate):
            names.append((number, candidate, struck))
    return names


@cache
def _parsed(source: Path) -> ast.Module:
    return ast.parse(source.read_text())


def _assigned(nodes: list[ast.stmt], imports: bool = True) -> dict[str, ast.AST]:
    """The names that a block of statements defines, assigns or (``imports``) imports."""
    names: dict[str, ast.AST] = {}
    for node in nodes:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id: node for t in targets if isinstance(t, ast.Name)}
        elif imports and isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0]: node for a in node.names}
    return names


def _exists_path(name: str) -> bool:
    path, _, member = name.partition(":")
    if not (ROOT / path.rstrip("/")).exists():
        return False
    if not member or member.isdigit() or not path.endswith(".py"):
        return True
    tree = _parsed(ROOT / path)
    blocks = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    return any(member in _assigned(block, imports=False) for block in blocks)  # defined here


def exists(name: str) -> bool:
    """Whether a path (relative to the repository, ``:name`` allowed) or a dotted module name
    (with a name the module defines) exists."""
    if not name.startswith("temporal_nsr."):
        return _exists_path(name)
    parts = name.split(".")
    for end in range(len(parts), 0, -1):  # the longest prefix that is a module or package
        base = ROOT.joinpath(*parts[:end])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else None
        if source is None and (base / "__init__.py").is_file():
            source = base / "__init__.py"
        if source is not None:
            break
    else:
        return False
    rest = parts[end:]
    if not rest:
        return True
    node = _assigned(_parsed(source).body).get(rest[0])
    if node is None:
        return False
    if len(rest) > 1 and isinstance(node, ast.ClassDef):  # a class attribute or method
        return rest[1] in _assigned(node.body)
    return True


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_code_paths_and_module_names_exist(page: Path) -> None:
    wrong = [
        f"{page.relative_to(ROOT)}:{number}: {name}" + (" (struck out, yet it exists)" * struck)
        for number, name, struck in names_in(page)
        if exists(name) == struck
    ]
    assert not wrong, (
        "written in backticks but not in the repository (README.md and docs/*.md; the rule is "
        "in names_in):\n" + "\n".join(wrong)
    )


def test_the_rule_checks_names_and_skips_what_is_not_one(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "`temporal_nsr/model/encoder.py` `conf/experiment/bend_20t.yaml:3` `docs/x.md`\n"
        "`temporal_nsr.evaluation.nowhere` `temporal_nsr.inference.NovelViewRenderer.from_run(d)`\n"
        "`training/module.py:cross_pairs` `render.py:render_figures` `model/gone.py`\n"
        "`conf/data/<name>.yaml` `docs/*/results.json` `outputs/train/x` `metrics.json`\n"
        "`model.renderer=x` `python -m temporal_nsr.gone run_dir=<run>` `temporal_nsr.{a,b}`\n"
        "renamed: ~~`temporal_nsr.lit_module`~~ and ~~`temporal_nsr.train`~~\n"
        "```bash\npython -m temporal_nsr.train experiment=tiny\n`temporal_nsr/in_a_fence.py`\n```\n"
    )
    names = names_in(page)
    assert names == [
        (1, "temporal_nsr/model/encoder.py", False),
        (1, "conf/experiment/bend_20t.yaml:3", False),
        (1, "docs/x.md", False),
        (2, "temporal_nsr.evaluation.nowhere", False),
        (2, "temporal_nsr.inference.NovelViewRenderer.from_run", False),
        (3, "temporal_nsr/training/module.py:cross_pairs", False),
        (3, "temporal_nsr/render.py:render_figures", False),
        (3, "temporal_nsr/model/gone.py", False),
        (5, "temporal_nsr.gone", False),
        (6, "temporal_nsr.lit_module", True),
        (6, "temporal_nsr.train", True),
        (8, "temporal_nsr.train", False),
    ]
    wrong = [name for _, name, struck in names if exists(name) == struck]
    assert wrong == [
        "docs/x.md",
        "temporal_nsr.evaluation.nowhere",
        "temporal_nsr/render.py:render_figures",  # imported there, defined in figures.py
        "temporal_nsr/model/gone.py",
        "temporal_nsr.gone",
        "temporal_nsr.train",  # struck out, yet it exists
    ]
    assert not exists("temporal_nsr.inference.NovelViewRenderer.from_nowhere")
    assert exists("temporal_nsr/evaluation/") and exists("temporal_nsr.evaluation")
    assert exists("temporal_nsr.evaluation.split") and exists("temporal_nsr.figures.Figure")
