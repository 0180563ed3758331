"""The action key of a stage: the sha256 of what decides today whether it is up to date.

That is the stage's doit `config_changed` value (the function it runs, its watched arguments
and settings, the pinned versions of its tools, any extra watched values), the sha256 of each
of its `file_dep` (the input stages' sums files, its code's import closure, the scripts and
pages it runs), and the files its own uptodate checks read (fetch's lock), plus the stage's
name and `FORMAT`. Paths are written relative to artifacts/, to the folder of pipeline.yaml or
to the repository, so two clones at different paths compute the same key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .actionresult import canonical_json

# Bump when what a key covers, or what an entry holds, changes meaning: old entries are then
# simply never looked up again.
FORMAT = 1


class Uncacheable(Exception):
    """This stage cannot be looked up or stored now (the message says why)."""


@dataclass(frozen=True)
class ActionInputs:
    stage: str
    watched: dict[str, Any]  # what doit's config_changed compares (tasks/__init__.py)
    file_dep: tuple[str, ...]  # relative to the repository (doit's file_dep)
    checked: tuple[str, ...] = ()  # files read by the stage's own uptodate checks


@dataclass(frozen=True)
class Places:
    """Where a clone keeps things: keys name paths relative to these, never absolutely."""

    root: Path  # the repository
    artifacts: Path
    config_dir: Path  # the folder of pipeline.yaml

    def canonical(self, path: Path) -> str:
        path = Path(os.path.abspath(path))
        for tag, base in (
            ("@artifacts", self.artifacts),
            ("@repo", self.root),
            ("@config", self.config_dir),
        ):
            if path == base or path.is_relative_to(base):
                return f"{tag}/{path.relative_to(base).as_posix()}".rstrip("/.")
        raise Uncacheable(f"{path} lies outside the repository, artifacts/ and the config's folder")


def _canonical_value(value: Any, places: Places) -> Any:
    """Arguments with the clone's paths made relative (a stage's arguments hold paths
    relative to the repository, e.g. artifacts/tfjs)."""
    if isinstance(value, dict):
        return {k: _canonical_value(v, places) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v, places) for v in value]
    if isinstance(value, str) and value and "://" not in value and "\n" not in value:
        path = Path(os.path.abspath(places.root / value))
        beside_config = path.is_relative_to(places.config_dir) and not path.is_relative_to(
            places.root
        )
        if path.is_relative_to(places.artifacts) or beside_config:
            return places.canonical(path)
    return value


def canonical_inputs(
    inputs: ActionInputs, places: Places, sha256: Callable[[Path], str]
) -> dict[str, Any]:
    """The document the key hashes (also what `doit` prints with SANET_CACHE_DEBUG=1)."""
    checked = {}
    for name in inputs.checked:
        path = places.root / name
        if not path.is_file():
            raise Uncacheable(f"{name} does not exist yet (the stage may write it)")
        checked[places.canonical(path)] = sha256(path)
    files = {
        places.canonical(places.root / name): sha256(places.root / name) for name in inputs.file_dep
    }
    return {
        "format": FORMAT,
        "stage": inputs.stage,
        "watched": _canonical_value(inputs.watched, places),
        "file_dep": dict(sorted(files.items())),
        "checked": dict(sorted(checked.items())),
    }


def action_key(inputs: ActionInputs, places: Places, sha256: Callable[[Path], str]) -> str:
    return hashlib.sha256(canonical_json(canonical_inputs(inputs, places, sha256))).hexdigest()


def relative_outputs(files: Iterable[str], artifacts: Path) -> list[str]:
    return [Path(os.path.relpath(file, artifacts)).as_posix() for file in files]
