"""pipeline.yaml's `model` section."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ..architecture import WIDTH_DIVISORS
from .base import Section


def _width_divisor(value: int) -> int:
    if value not in WIDTH_DIVISORS:
        raise ValueError(f"must be one of {list(WIDTH_DIVISORS)}, got {value}")
    return value


class ModelSection(Section):
    width_divisor: Annotated[int, AfterValidator(_width_divisor)] = 1
