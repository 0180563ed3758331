"""Fetching the upstream checkpoints: ordered sources, resume, retries, sha256 lock, atomic install.

The logic of stage `fetch`; its entry point is stages/fetch.py.

For each checkpoint the sources are tried in order: a mirror (folder or base URL), the upstream
Yandex.Disk public link (resolved to a direct link through Yandex.Disk's public-resource API)
and the upstream GitHub release asset. A download streams into a hidden `.part` file beside the
target, resumes it with HTTP Range after a dropped connection, retries 5xx answers and network
faults with exponential backoff, and is moved onto the final path only after its sha256 checks
out. Upstream publishes no sums, so the first successful fetch records them in a lock file that
the user commits; from then on they are enforced and a mismatch stops the build.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import requests
from tqdm import tqdm

from .architecture import CHECKPOINT_FILES
from .errors import PipelineError
from .files import CHUNK, fsync_file, sha256_file, write_json
from .logs import stderr_is_terminal

# What a checkpoint file starts with: torch's zip container, or a legacy protocol-2 pickle.
CHECKPOINT_MAGICS = (b"PK\x03\x04", b"\x80\x02")
# Bytes read per network read: a connection that drops mid-read loses at most this much of
# what it had sent, so a resume restarts close to where the drop happened.
NETWORK_CHUNK = 64 * 1024
RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 30.0
MIRROR_ENV = "SANET_MIRROR"
T = TypeVar("T")


class FetchError(PipelineError):
    """No source could deliver a checkpoint."""


class ChecksumMismatch(FetchError):
    """A download completed but its sha256 is not the locked one: never installed."""


class SourceFailed(Exception):
    """This source cannot deliver the file; the next source is tried."""


class Retryable(Exception):
    """A transient fault: the same request is tried again after a backoff."""


@dataclass(frozen=True)
class Source:
    kind: str  # "mirror", "yandex" or "github"
    location: str  # a URL, or a folder for a directory mirror

    def __str__(self) -> str:
        return f"{self.kind} {self.location}"


@dataclass(frozen=True)
class FetchSettings:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    retries: int = 4
    backoff_s: float = 1.0
    yandex_api: str = "https://cloud-api.yandex.net/v1/disk/public/resources/download"
    progress: bool = True


Validator = Callable[[Path, str], None]  # (downloaded file, checkpoint name); raises if bad


@dataclass(frozen=True)
class FetchResult:
    name: str
    sha256: str
    size: int
    source: Source
    downloaded: bool  # False when the file already in place matched the lock


def sources_for(links: dict[str, str | None], mirror: str | None) -> list[Source]:
    """The ordered sources of one checkpoint: mirror first, then upstream's links."""
    sources = [Source("mirror", mirror)] if mirror else []
    sources += [Source(kind, links[kind]) for kind in ("yandex", "github") if links.get(kind)]
    return sources


def resolve_mirror(configured: str | None, command_line: str | None) -> str | None:
    """The mirror in force: the command line beats the environment, which beats pipeline.yaml."""
    return command_line or os.environ.get(MIRROR_ENV) or configured


def _part_path(dest: Path, location: str) -> Path:
    # One partial file per source URL: bytes from two different sources are never spliced.
    tag = hashlib.sha256(location.encode()).hexdigest()[:12]
    return dest.parent / f".{dest.name}.{tag}.part"


def _remove_parts(dest: Path) -> None:
    for stale in dest.parent.glob(f".{dest.name}.*.part"):
        stale.unlink(missing_ok=True)


def _check_magic(path: Path) -> None:
    with open(path, "rb") as handle:
        head = handle.read(4)
    if not head.startswith(CHECKPOINT_MAGICS):
        path.unlink()
        raise SourceFailed(
            f"the file is not a PyTorch checkpoint (starts with {head!r}); the host may have "
            f"answered with an error or download page instead of the file"
        )


class CheckpointFetcher:
    """Downloads checkpoints over one HTTP session with the configured timeouts and retries."""

    def __init__(
        self,
        settings: FetchSettings,
        session: requests.Session | None = None,
        validate: Validator | None = None,
    ) -> None:
        self.settings = settings
        # Trust on first use must not pin a corrupt file: with no sum to check against, the
        # bytes are first validated as the checkpoint they claim to be.
        self.validate = validate
        self.session = session or requests.Session()
        self.session.headers.setdefault("User-Agent", "sanet-tfjs-pipeline")

    @property
    def timeout(self) -> tuple[float, float]:
        return (self.settings.connect_timeout_s, self.settings.read_timeout_s)

    def fetch(
        self, name: str, dest: Path, sources: list[Source], expected_sha256: str | None
    ) -> FetchResult:
        """Install `name` at `dest` from the first source that delivers it (verified)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_file() and expected_sha256 and sha256_file(dest) == expected_sha256:
            return FetchResult(
                name, expected_sha256, dest.stat().st_size, Source("local", str(dest)), False
            )
        if not sources:
            raise FetchError(f"checkpoint {name!r}: no source is configured. {self._hint()}")
        failures: list[str] = []
        for source in sources:
            try:
                part, url = self._deliver(name, dest, source)
            except SourceFailed as exc:
                failures.append(f"  - {source}: {exc}")
                continue
            actual = sha256_file(part)
            if not expected_sha256 and self.validate is not None:
                try:
                    self.validate(part, name)
                except PipelineError as exc:
                    part.unlink(missing_ok=True)
                    failures.append(
                        f"  - {source} ({url}): not a valid {name}, so neither installed nor "
                        f"recorded in the lock: {exc}"
                    )
                    continue
            if expected_sha256 and actual != expected_sha256:
                part.unlink(missing_ok=True)
                raise ChecksumMismatch(
                    f"checkpoint {name!r} from {source.kind} {url} has the wrong sha256:\n"
                    f"  expected {expected_sha256} (from the lock file)\n"
                    f"  actual   {actual}\n"
                    f"Nothing was installed. If the source is right and upstream changed the "
                    f"file, delete its entry from the lock file to accept the new sum "
                    f"(the entry is named below); otherwise use a trusted mirror."
                )
            size = part.stat().st_size
            fsync_file(part)
            os.replace(part, dest)
            _remove_parts(dest)
            return FetchResult(name, actual, size, source, True)
        raise FetchError(
            f"could not fetch checkpoint {name!r} from any source:\n"
            + "\n".join(failures)
            + f"\n{self._hint()}"
        )

    @staticmethod
    def _hint() -> str:
        return (
            f"What to do: download the file by hand (or copy it from a machine that has it) "
            f"into a folder and point the mirror at it: `{MIRROR_ENV}=/path/to/folder doit` or "
            f"`doit fetch --mirror /path/to/folder`; a mirror may also be an http(s) base URL."
        )

    def _deliver(self, name: str, dest: Path, source: Source) -> tuple[Path, str]:
        """Bring the bytes of `name` from `source` into a part file; return it and the URL."""
        if source.kind == "mirror" and "://" not in source.location:
            return self._copy_from_directory(name, dest, Path(source.location))
        if source.kind == "mirror":
            url = source.location.rstrip("/") + "/" + name
        elif source.kind == "yandex":
            url = self._with_retries(lambda: self._resolve_yandex(source.location))
        else:
            url = source.location
        part = _part_path(dest, url)
        try:
            # A part left by exhausted retries stays (hidden, never at the final path): the
            # next run resumes it.
            self._with_retries(lambda: self._download(url, part, name))
            _check_magic(part)
        except SourceFailed as exc:
            raise SourceFailed(f"{url}: {exc}") from None
        return part, url

    def _copy_from_directory(self, name: str, dest: Path, folder: Path) -> tuple[Path, str]:
        origin = folder / name
        if not origin.is_file():
            raise SourceFailed(f"{origin} does not exist")
        part = _part_path(dest, str(origin))
        with open(origin, "rb") as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
        _check_magic(part)
        return part, str(origin)

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


# --- the lock file ---------------------------------------------------------------------------


@dataclass
class ChecksumLock:
    """`{lock_key: {file: {"sha256", "bytes"}}}`, committed by the user beside pipeline.yaml.

    The lock key names the set of checkpoints: "upstream", or the fixture's seed and width.
    """

    path: Path
    entries: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> ChecksumLock:
        path = Path(path)
        if not path.exists():
            return cls(path)
        try:
            data = json.loads(path.read_text())
            entries = data["checkpoints"]
            assert isinstance(entries, dict)
        except (ValueError, KeyError, AssertionError):
            raise FetchError(
                f"lock file {path} is not valid (expected JSON with a 'checkpoints' mapping); "
                f"restore it from git, or delete it to record new sums at the next fetch"
            ) from None
        return cls(path, entries)

    def describe_entry(self, key: str, name: str) -> str:
        """Where the entry for `name` is, for a message whose remedy is to delete it."""
        return f'the lock entry: {self.path}, "checkpoints" -> "{key}" -> "{name}"'

    def expected(self, key: str, name: str) -> str | None:
        return self.entries.get(key, {}).get(name, {}).get("sha256")

    def record(self, key: str, result: FetchResult) -> bool:
        """Add a sum not yet locked; return whether the lock changed."""
        if self.expected(key, result.name):
            return False
        self.entries.setdefault(key, {})[result.name] = {
            "sha256": result.sha256,
            "bytes": result.size,
        }
        return True

    def write(self) -> None:
        write_json(
            self.path,
            {
                "about": "sha256 of the SANet checkpoints, recorded at the first successful "
                "fetch and enforced afterwards. Commit this file.",
                "checkpoints": self.entries,
            },
        )


def fetch_checkpoints(
    fetcher: CheckpointFetcher,
    links: dict[str, dict[str, str | None]],
    mirror: str | None,
    dest_dir: Path,
    lock: ChecksumLock,
    lock_key: str,
) -> dict[str, FetchResult]:
    """Fetch all three checkpoints into `dest_dir`, enforcing and extending the lock."""
    results = {}
    for name in CHECKPOINT_FILES:
        sources = sources_for(links[name], mirror)
        try:
            result = fetcher.fetch(
                name, Path(dest_dir) / name, sources, lock.expected(lock_key, name)
            )
        except ChecksumMismatch as exc:
            raise ChecksumMismatch(f"{exc}\n  {lock.describe_entry(lock_key, name)}") from None
        if lock.record(lock_key, result):
            lock.write()
            print(
                f"recorded sha256 of {name} in {lock.path} (first fetch): {result.sha256}; "
                f"commit that file to pin it",
                file=sys.stderr,
            )
        results[name] = result
    return results


def checkpoint_validator(width_divisor: int) -> Validator:
    """Loads a downloaded file safely and checks every tensor against the architecture
    (sanet_tfjs.checkpoints); raises a PipelineError naming what is wrong."""

    def validate(path: Path, name: str) -> None:
        from .checkpoints import validate_checkpoint  # torch: only when a file is new

        validate_checkpoint(path, name, width_divisor)

    return validate
