"""One name per idea: no two modules of the package define the same public name.

Each module's source is read (not imported), and the public names it binds at its top level are
collected: classes, functions and assigned constants, not the names it imports. A module's
logger (``log = logging.getLogger(...)``) is not part of the API and is left out, as are the
``add_parser`` and ``run`` every command module of the CLI defines (its ``Command`` protocol).
"""

from __future__ import annotations

import ast
import pkgutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import vobiz_stream

PACKAGE_DIR = Path(vobiz_stream.__file__).parent


def module_files() -> Iterator[tuple[str, Path]]:
    """Every module of the package with its source file, packages' ``__init__`` included."""
    yield vobiz_stream.__name__, PACKAGE_DIR / "__init__.py"
    for info in pkgutil.walk_packages(vobiz_stream.__path__, prefix="vobiz_stream."):
        relative = Path(*info.name.split(".")[1:])
        path = PACKAGE_DIR / relative / "__init__.py" if info.ispkg else PACKAGE_DIR / relative
        yield info.name, path if info.ispkg else path.with_suffix(".py")


def _is_logger(value: ast.expr | None) -> bool:
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "getLogger"
    )


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The statements of a module's top level, looking into ``if`` and ``try`` blocks."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _top_level(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            yield from _top_level(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                yield from _top_level(handler.body)
        else:
            yield node


def defined_names(source: str) -> set[str]:
    """The public names a module's source defines at its top level."""
    names: set[str] = set()
    for node in _top_level(ast.parse(source).body):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign) and not _is_logger(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and not _is_logger(node.value)
        ):
            names.add(node.target.id)
    return {name for name in names if not name.startswith("_")}


COMMAND_PROTOCOL = {"add_parser", "run"}
"""What every ``vobiz_stream.cli`` command module defines, by design."""


def duplicates() -> dict[str, list[str]]:
    """Each public name defined by more than one module, with those modules."""
    where: defaultdict[str, list[str]] = defaultdict(list)
    for module, path in module_files():
        names = defined_names(path.read_text(encoding="utf-8"))
        if module.startswith("vobiz_stream.cli."):
            names -= COMMAND_PROTOCOL
        for name in names:
            where[name].append(module)
    return {name: sorted(modules) for name, modules in where.items() if len(modules) > 1}


def test_the_walk_sees_every_module_of_the_package() -> None:
    seen = {path for _, path in module_files()}
    on_disk = set(PACKAGE_DIR.rglob("*.py"))
    assert seen == on_disk
    assert len(seen) > 40


def test_defined_names_skip_imports_private_names_and_loggers() -> None:
    source = (
        "import logging\nfrom x import Imported\nlog = logging.getLogger(__name__)\n"
        "A = 1\nb: int = 2\n_hidden = 3\nclass C: ...\ndef f() -> None: ...\n"
        "if True:\n    G = 4\n"
    )
    assert defined_names(source) == {"A", "b", "C", "f", "G"}


def test_no_two_modules_define_the_same_public_name() -> None:
    found = duplicates()
    listing = "\n".join(f"{name}: {', '.join(modules)}" for name, modules in sorted(found.items()))
    assert not found, f"public names defined in more than one module:\n{listing}"
