"""What every section's schema shares: strict, frozen models and the common value types."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
PositiveFloat = Annotated[float, Field(gt=0)]
Resolution = Annotated[int, Field(ge=17, le=2048)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
