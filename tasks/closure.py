"""A stage's code inputs, derived from its imports: never typed by hand, never stale.

`python_closure("tf_convert")` is every module of `sanet_tfjs` that the stage's action can
import: its module, what that imports inside the package (at the top or inside a function),
and so on, with the package's `__init__.py`. `script_closure("js/run_model.mjs")` does the same
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


@functools.cache
def _imported_modules(source_path: Path, package_dir: Path) -> frozenset[str]:
    """The `sanet_tfjs` modules a module's source imports (names without the package)."""
    tree = ast.parse(source_path.read_text(), filename=str(source_path))
    found = set()
    for node in _import_statements(tree.body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(f"{PACKAGE}."):
                    found.add(alias.name.split(".")[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1 or (node.level == 0 and node.module == PACKAGE):
                base = node.module if node.level == 1 else None
            elif node.level == 0 and (node.module or "").startswith(f"{PACKAGE}."):
                base = node.module.split(".")[1]
            else:
                continue
            if base:
                found.add(base.split(".")[0])
            else:  # `from . import x`: x is a module of the package (or a name of __init__)
                found.update(alias.name for alias in node.names)
    return frozenset(name for name in found if (package_dir / f"{name}.py").is_file())


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
    """The source files of `module` and every package module it imports, transitively."""
    seen, pending = set(), [module]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        path = package_dir / f"{name}.py"
        pending.extend(_imported_modules(path, package_dir) - seen)
    return sorted([package_dir / "__init__.py", *(package_dir / f"{name}.py" for name in seen)])


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
