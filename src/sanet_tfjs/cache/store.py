"""Where entries live: a Bazel HTTP cache layout (`ac/<key>`, `cas/<sha256>`) under a URL.

    s3://bucket/prefix    S3 (s3fs): AWS, SeaweedFS, MinIO, ...; credentials from the usual
                          AWS_* environment variables, the endpoint from cache.endpoint_url or
                          AWS_ENDPOINT_URL_S3
    http(s)://host/path   a Bazel HTTP cache (bazel-remote, nginx with WebDAV PUT)
    file:///path          a shared folder (and the unit tests)

s3fs and aiohttp are imported only when a stage looks something up, never by `doit list`.
Every method raises on trouble; the caller (cache/stage.py) turns that into one line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class StoreSettings:
    url: str
    endpoint_url: str | None = None
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0
    retries: int = 1


class Store:
    """The operations the cache needs, on one fsspec filesystem."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def read(self, name: str) -> bytes | None:
        """The bytes of a small object (an ac/ entry), None if absent."""
        try:
            return self.fs.cat_file(self.path(name))
        except FileNotFoundError:
            return None

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        """Each (name, local file); concurrent where the filesystem does that (s3fs)."""
        if pairs:
            self.fs.get([self.path(name) for name, _ in pairs], [str(p) for _, p in pairs])

    def exists(self, name: str) -> bool:
        return self.fs.exists(self.path(name))

    def put(self, local: Path, name: str) -> None:
        """Store a blob (content-addressed: writing it twice is harmless)."""
        self.fs.put_file(str(local), self.path(name))

    def create(self, name: str, data: bytes) -> bool:
        """Store `data` at `name` only if nothing is there; False if something was."""
        if self.exists(name):
            return False
        self.fs.pipe_file(self.path(name), data)
        return True


class S3Store(Store):
    """Signed requests with the environment's credentials; with none at all, anonymous ones
    (a bucket that lets anyone read: reading needs no credentials, writing does)."""

    def __init__(self, filesystem: Callable[[bool], Any], root: str) -> None:
        super().__init__(filesystem(False), root)
        self.filesystem = filesystem  # anonymous -> an s3fs filesystem

    def read(self, name: str) -> bytes | None:
        return self._anonymous_if_no_credentials(lambda: Store.read(self, name))

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        self._anonymous_if_no_credentials(lambda: Store.download(self, pairs))

    def _anonymous_if_no_credentials(self, call: Callable[[], Any]) -> Any:
        from botocore.exceptions import NoCredentialsError

        try:
            return call()
        except NoCredentialsError:
            self.fs = self.filesystem(True)
            return call()

    def exists(self, name: str) -> bool:
        self.fs.invalidate_cache()  # s3fs caches listings: another writer may have written
        return super().exists(name)

    def create(self, name: str, data: bytes) -> bool:
        # A conditional PUT (If-None-Match: *): of two writers, one gets 412 and keeps the other's.
        try:
            self.fs.pipe_file(self.path(name), data, mode="create")
        except FileExistsError:
            return False
        except OSError as exc:
            if "pre-condition" in str(exc) or "PreconditionFailed" in str(exc):
                return False
            raise
        return True


class HttpStore(Store):
    """A Bazel HTTP cache: GET and PUT. Existence is not asked (fsspec's HEAD falls back to
    GET): blobs are always PUT, which such a server dedupes."""

    def exists(self, name: str) -> bool:
        return self.read(name) is not None

    def put(self, local: Path, name: str) -> None:
        # A PUT with Content-Length (fsspec's put_file streams chunked, which not every Bazel
        # cache server takes); the largest blob here is about 80 MB.
        self.fs.pipe_file(self.path(name), local.read_bytes())

    def create(self, name: str, data: bytes) -> bool:
        # Bazel's HTTP protocol has no conditional PUT: first look, then write (two writers of
        # one key in the same second may both write; both entries are valid).
        if self.exists(name):
            return False
        self.fs.pipe_file(self.path(name), data)  # fsspec's http pipe_file is a PUT
        return True


class LocalStore(Store):
    """A folder: every file written under a temporary name and moved (blobs) or hard-linked
    (ac/ entries: link fails if the name exists, so the first writer wins) into place."""

    def __init__(self, root: str) -> None:
        super().__init__(None, root)

    def read(self, name: str) -> bytes | None:
        try:
            return Path(self.path(name)).read_bytes()
        except FileNotFoundError:
            return None

    def download(self, pairs: list[tuple[str, Path]]) -> None:
        for name, local in pairs:
            shutil.copyfile(self.path(name), local)

    def exists(self, name: str) -> bool:
        return Path(self.path(name)).exists()

    def _staged(self, name: str) -> Path:
        dest = Path(self.path(name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
        os.close(handle)
        return Path(tmp)

    def put(self, local: Path, name: str) -> None:
        tmp = self._staged(name)
        shutil.copyfile(local, tmp)
        os.replace(tmp, self.path(name))

    def create(self, name: str, data: bytes) -> bool:
        tmp = self._staged(name)
        try:
            tmp.write_bytes(data)
            os.link(tmp, self.path(name))
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True


def open_store(settings: StoreSettings) -> Store:
    parts = urlsplit(settings.url)
    if parts.scheme == "file":
        return LocalStore(parts.path)
    if parts.scheme == "s3":
        import s3fs  # heavy (aiobotocore): only when a stage asks the cache

        def filesystem(anonymous: bool) -> Any:
            fs = s3fs.S3FileSystem(
                anon=anonymous,
                endpoint_url=settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None,
                skip_instance_cache=True,
                use_listings_cache=False,
                config_kwargs={
                    "connect_timeout": settings.connect_timeout_s,
                    "read_timeout": settings.read_timeout_s,
                    "retries": {"max_attempts": settings.retries + 1, "mode": "standard"},
                },
            )
            fs.retries = settings.retries + 1  # s3fs's own retries (5 by default), on botocore's
            return fs

        return S3Store(filesystem, f"{parts.netloc}{parts.path}")
    if parts.scheme in ("http", "https"):
        import aiohttp
        import fsspec

        timeout = aiohttp.ClientTimeout(
            sock_connect=settings.connect_timeout_s, sock_read=settings.read_timeout_s
        )
        fs = fsspec.filesystem("http", skip_instance_cache=True, client_kwargs={"timeout": timeout})
        return HttpStore(fs, settings.url)
    raise ValueError(f"cache.url: unsupported scheme {parts.scheme!r} (s3, http, https, file)")
