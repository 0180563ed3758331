"""pipeline.yaml's `fetch` section (the fetch stage validates it again, from this module)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from ..architecture import CHECKPOINT_FILES
from .base import HttpUrl, PositiveFloat, Section, _http_url


def _mirror(value: str) -> str:
    # A mirror is a folder (no scheme) or an http(s) base URL.
    if "://" in value:
        _http_url(value)
    elif not value.strip():
        raise ValueError("must be an http(s) URL or a directory path, got an empty string")
    return value


Mirror = Annotated[str, AfterValidator(_mirror)]
CheckpointFile = Literal[CHECKPOINT_FILES]  # type: ignore[valid-type]


class CheckpointSources(Section):
    yandex: HttpUrl | None = None
    github: HttpUrl | None = None


class FetchSection(Section):
    profile: Literal["fixture", "upstream"] = "fixture"
    mirror: Mirror | None = None
    lock_file: str = "checkpoints.lock.json"
    connect_timeout_s: PositiveFloat = 10.0
    read_timeout_s: PositiveFloat = 60.0
    retries: Annotated[int, Field(ge=0, le=20)] = 4
    backoff_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    yandex_api: HttpUrl = "https://cloud-api.yandex.net/v1/disk/public/resources/download"
    checkpoints: dict[CheckpointFile, CheckpointSources]

    @field_validator("checkpoints")
    @classmethod
    def _every_checkpoint_listed(cls, value: dict) -> dict:
        missing = [name for name in CHECKPOINT_FILES if name not in value]
        if missing:
            raise ValueError(f"must list every upstream file; missing {missing}")
        return value
