"""pipeline.yaml: the one place for settings, validated on load.

Each stage declares the keys it reads (tasks/), is handed their values, and its doit task
depends on exactly those values, so editing a key reruns only the stages that read it. An
invalid file stops everything with one message that names every bad key path; nothing is built.
Each section's schema is a module of its own (settings/): a stage's code inputs hold only the
sections it imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import PipelineError
from .settings.base import Section
from .settings.bench import BenchSection
from .settings.cache import CacheSection
from .settings.fetch import FetchSection
from .settings.fixture import FixtureSection
from .settings.model import ModelSection
from .settings.onnx import OnnxSection
from .settings.parity import ParitySection
from .settings.smoke import SmokeSection
from .settings.tfjs import TfjsSection


class ConfigError(PipelineError):
    """pipeline.yaml is missing, unreadable or invalid."""


class PipelineConfig(Section):
    artifacts_dir: str = "artifacts"
    model: ModelSection = ModelSection()
    fixture: FixtureSection = FixtureSection()
    fetch: FetchSection
    onnx: OnnxSection = OnnxSection()
    parity: ParitySection = ParitySection()
    tfjs: TfjsSection = TfjsSection()
    smoke: SmokeSection = SmokeSection()
    bench: BenchSection = BenchSection()
    cache: CacheSection = CacheSection()

    def section(self, name: str) -> dict[str, Any]:
        """A section as plain JSON data (the values handed to stages and watched by doit)."""
        return getattr(self, name).model_dump(mode="json")


def _key_path(loc: tuple) -> str:
    path = ""
    for part in loc:
        if part == "[key]":  # pydantic marks errors in a mapping's key this way
            continue
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _describe(error: dict) -> str:
    if error["type"] == "extra_forbidden":
        return "unknown key (check its spelling against pipeline.yaml's documented keys)"
    if error["type"] == "missing":
        return "required key is missing"
    message = error["msg"].removeprefix("Value error, ")
    if "input" in error and not isinstance(error["input"], dict | list):
        message += f" (got {error['input']!r})"
    return message


def parse_config(data: Any, source: str = "pipeline.yaml") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of sections")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        lines = [f"  - {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError(
            f"{source} is invalid ({len(lines)} problem(s)); nothing was built:\n"
            + "\n".join(lines)
        ) from None


def load_config(path: Path) -> PipelineConfig:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path} not found; run from the repository root") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse_config(data, str(path))
