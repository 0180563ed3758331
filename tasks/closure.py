"""A stage's code inputs, derived from its imports: never typed by hand, never stale.

`python_closure("stages.tf")` is every module of `sanet_tfjs` that the stage's action can
import: its module, what that imports inside the package (at the top or inside a function,
absolute or relative), and so on, with the `__init__.py` of the package and of each
subpackage on the way. `script_closure("js/run_model.mjs")` does the same
for the JavaScript a stage runs, following relative `import ... from './x.mjs'`. Both read the
sources with `ast` and a regular expression, never import them: `doit list` stays instant
(about 10 ms for the whole package).
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "sanet_tfjs"


def _module_path(name: str, package_dir: Path) -> Path | None:
    """The source of package module `name` ("site", "stages.page", "stages" for a
    subpackage's __init__), or None if the package has no such module."""
    parts = name.split(".")
    for path in (
        package_dir.joinpath(*parts).with_suffix(".py"),
        package_dir.joinpath(*parts, "__init__.py"),
    ):
        if path.is_file():
            return path
    return None


@functools.cache
def _imported_modules(module: str, package_dir: Path) -> frozenset[str]:
    """The `sanet_tfjs` modules a module's source imports, as dotted names without the
    package, with the subpackages they are in (Python runs those __init__ files too)."""
    source_path = _module_path(module, package_dir)
    tree = ast.parse(source_path.read_text(), filename=str(source_path))
    # The package a relative import starts from: a subpackage's __init__ is its own package.
    here = module.split(".") if source_path.name == "__init__.py" else module.split(".")[:-1]
    candidates: set[str] = set()
    for node in _import_statements(tree.body):
        if isinstance(node, ast.Import):
            candidates.update(
                alias.name.split(".", 1)[1]
                for alias in node.names
                if alias.name.startswith(f"{PACKAGE}.")
            )
            continue
        if node.level == 0:
            if node.module != PACKAGE and not (node.module or "").startswith(f"{PACKAGE}."):
                continue
            base = (node.module or "").split(".")[1:]
        else:
            base = (here[: len(here) - (node.level - 1)] if node.level > 1 else here) + (
                node.module.split(".") if node.module else []
            )
        named = {".".join(base)} if base else set()
        # `from .x import y`: y may be a module of x (or a name in it)
        named |= {".".join([*base, alias.name]) for alias in node.names}
        if node.level and not any(_module_path(name, package_dir) for name in named if name):
            # A relative import that names no module would fail at run time, and an input
            # missing from the closure would never rerun the stage: stop at graph load.
            raise ImportError(
                f"{source_path}:{node.lineno}: `from {'.' * node.level}{node.module or ''} "
                "import ...` names no module of the package"
            )
        candidates |= named
    found = {name for name in candidates if name and _module_path(name, package_dir)}
    return frozenset(found | {parent for name in found for parent in _parents(name)})


def _parents(module: str) -> list[str]:
    """The subpackages `module` is in: "a.b.c" -> ["a", "a.b"]."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _import_statements(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements at any depth of statement nesting (functions, classes, if, try,
    with). Expressions are not visited: an import is a statement, and skipping them makes
    this five times faster than ast.walk, which `doit list` pays for every module."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        for field in ("body", "orelse", "finalbody", "handlers"):
            nested = getattr(node, field, None)
            if isinstance(nested, list):
                yield from _import_statements(nested)


def python_closure(module: str, package_dir: Path) -> list[Path]:
    """The source files of `module` ("tfjs_graph", "stages.page") and every package module it
    imports, transitively, with the package's and subpackages' __init__.py."""
    seen, pending = set(), [module, *_parents(module)]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(_imported_modules(name, package_dir) - seen)
    paths = {package_dir / "__init__.py", *(_module_path(name, package_dir) for name in seen)}
    return sorted(paths)


_RELATIVE_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}/[^'"]+)['"]""")


def script_closure(script: Path) -> list[Path]:
    """`script` and the files its relative ES-module imports reach, transitively."""
    seen: set[Path] = set()
    pending = [script.resolve()]
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        for target in _RELATIVE_IMPORT.findall(path.read_text()):
            imported = (path.parent / target).resolve()
            if imported.is_file():  # a harness page's import of a served copy is not on disk
                pending.append(imported)
    return sorted(seen)
