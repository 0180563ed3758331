"""pipeline.yaml's `cache` section: the shared build cache (docs/cache.md). No stage reads it;
the stage wrapper does, and nothing here changes what is built."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from .base import HttpUrl, PositiveFloat, Section


def _cache_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("s3", "http", "https", "file") or not (parts.netloc or parts.path):
        raise ValueError(f"must be an s3://, http(s):// or file:// URL, got {value!r}")
    return value


def _hex_key(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value.lower()):
        raise ValueError("must be a 32-byte ed25519 public key in hex (64 characters)")
    return value.lower()


class CacheSection(Section):
    # Credentials never come from this file: S3 reads the AWS_* environment variables, an
    # http(s) URL with a password comes from SANET_CACHE_URL.
    url: Annotated[str, AfterValidator(_cache_url)] | None = None  # None: no remote cache
    write: bool = False  # upload what this machine builds (CI on main); SANET_CACHE_WRITE=1
    endpoint_url: HttpUrl | None = None  # an S3 endpoint other than AWS (SeaweedFS, MinIO)
    connect_timeout_s: PositiveFloat = 5.0
    read_timeout_s: PositiveFloat = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 1
    # ed25519: entries without a valid signature by this key are ignored (None: not checked)
    public_key: Annotated[str, AfterValidator(_hex_key)] | None = None
    signing_key_env: str = "SANET_CACHE_SIGNING_KEY"  # the writers' private key (hex), by name
