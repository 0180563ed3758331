"""The repository this package runs from: its root, and the tool versions its lock files pin."""

from __future__ import annotations

import functools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def locked_versions() -> dict[str, str]:
    """Package -> pinned version, from requirements.lock (PyPI names, normalised) and
    package-lock.json (npm names)."""
    versions = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            versions[name.strip().lower().replace("_", "-")] = version.strip()
    packages = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    for path, entry in packages.items():
        if path.startswith("node_modules/"):
            versions[path.removeprefix("node_modules/")] = entry.get("version", "")
    return versions


def pinned(*packages: str) -> dict[str, str]:
    """The pinned versions of `packages`."""
    versions = locked_versions()
    return {name: versions[name] for name in packages}
