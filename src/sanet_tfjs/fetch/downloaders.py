"""Bringing one file's bytes from one kind of source into a part file: HTTP (one session,
timeouts, retries with backoff, resume with Range), Yandex.Disk's public-link API (resolved to a
direct HTTP link) and a folder. What the bytes must be is the fetcher's business (fetcher.py)."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from tqdm import tqdm

from ..files import CHUNK
from ..logs import stderr_is_terminal

# Bytes read per network read: a connection that drops mid-read loses at most this much of
# what it had sent, so a resume restarts close to where the drop happened.
NETWORK_CHUNK = 64 * 1024
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0
T = TypeVar("T")


class SourceFailed(Exception):
    """This source cannot deliver the file; the next source is tried."""


class Retryable(Exception):
    """A transient fault: the same request is tried again after a backoff."""


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 1.0
    yandex_api: str = "https://cloud-api.yandex.net/v1/disk/public/resources/download"
    progress: bool = True


class HTTPDownloader:
    """GETs over one HTTP session with the configured timeouts, retries and backoff."""

    def __init__(self, settings: FetchSettings, session: requests.Session | None = None) -> None:
        self.settings = settings
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "sanet-tfjs-pipeline")

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def download(self, url: str, part: Path, name: str) -> None:
        """`url` into `part`, resuming what `part` already holds; retried on transient faults.
        A part left by exhausted retries stays (hidden, never at the final path): the next run
        resumes it."""
        self._with_retries(lambda: self._download(url, part, name))

    def resolve_yandex(self, public_link: str) -> str:
        """The direct download link of a Yandex.Disk public link, from its public-resource API."""
        return self._with_retries(lambda: self._resolve_yandex(public_link))

    def _with_retries(self, call: Callable[[], T]) -> T:
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                return call()
            except Retryable as exc:
                if attempt == attempts - 1:
                    raise SourceFailed(f"{exc} (gave up after {attempts} attempts)") from None
                delay = min(self.settings.backoff_s * 2**attempt, MAX_BACKOFF_S)
                print(f"  {exc}; retrying in {delay:.1f} s", file=sys.stderr)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _get(self, url: str, **kwargs: Any) -> requests.Response:
        """A GET that sorts failures into retryable faults and final refusals."""
        try:
            response = self.session.get(url, timeout=self.timeout, **kwargs)
        except requests.TooManyRedirects:
            raise SourceFailed("too many redirects") from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Retryable(f"network error ({type(exc).__name__})") from None
        if response.status_code in RETRY_STATUSES:
            response.close()
            raise Retryable(f"HTTP {response.status_code}")
        if response.status_code >= 400 and response.status_code != 416:
            response.close()
            raise SourceFailed(f"HTTP {response.status_code}")
        return response

    def _resolve_yandex(self, public_link: str) -> str:
        response = self._get(self.settings.yandex_api, params={"public_key": public_link})
        try:
            href = response.json()["href"]
        except (ValueError, KeyError, TypeError):
            raise SourceFailed("Yandex.Disk API answered without a download link") from None
        return href

    def _download(self, url: str, part: Path, name: str) -> None:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        response = self._get(url, stream=True, headers=headers)
        with response:
            if response.status_code == 416:  # our partial is complete or stale: start over
                part.unlink(missing_ok=True)
                raise Retryable("server refused the resume range; restarting the download")
            if "text/html" in response.headers.get("Content-Type", ""):
                raise SourceFailed("answered with an HTML page instead of the file")
            if response.status_code == 206 and not response.headers.get(
                "Content-Range", ""
            ).startswith(f"bytes {offset}-"):
                offset = 0  # an unexpected range: do not splice, start over
                part.unlink(missing_ok=True)
                raise Retryable("server sent a different range than asked; restarting")
            if response.status_code != 206:
                offset = 0  # the server ignored Range: it sends the whole file
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            self._stream(response, part, offset, total, name)

    def _stream(
        self, response: requests.Response, part: Path, offset: int, total: int | None, name: str
    ) -> None:
        # A bar on a terminal; in a log, the one line per file that fetch prints anyway.
        interactive = stderr_is_terminal()
        with (
            open(part, "ab" if offset else "wb") as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                desc=name,
                file=sys.stderr,
                mininterval=0.2,
                disable=not (self.settings.progress and interactive),
                leave=False,
            ) as bar,
        ):
            try:
                for chunk in _chunks(response):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                raise Retryable(f"connection dropped ({type(exc).__name__})") from None
            # Some servers close early without an error: count the bytes ourselves.
            out.flush()
            received = out.tell()
        if total is not None and received != total:
            raise Retryable(f"connection dropped after {received} of {total} bytes")


def _chunks(response: requests.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(NETWORK_CHUNK)
    except requests.exceptions.ChunkedEncodingError as exc:
        raise requests.ConnectionError(str(exc)) from None


def copy_from_folder(origin: Path, part: Path) -> None:
    """A mirror folder's copy of the file into `part`."""
    if not origin.is_file():
        raise SourceFailed(f"{origin} does not exist")
    with open(origin, "rb") as source, open(part, "wb") as out:
        shutil.copyfileobj(source, out, CHUNK)
