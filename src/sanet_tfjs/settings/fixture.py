"""pipeline.yaml's `fixture` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from .base import Section


class FixtureSection(Section):
    seed: Annotated[int, Field(ge=0)] = 2019
