"""One checkpoint from the first of its sources that delivers it: each source's bytes land in a
hidden part file beside the target (downloaders.py), are checked (a checkpoint's first bytes;
with no locked sum, the whole file as the checkpoint it claims to be; with one, its sha256) and
only then moved onto the final path."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from ..errors import PipelineError
from ..files import fsync_file, sha256_file
from .downloaders import FetchSettings, HTTPDownloader, SourceFailed, copy_from_folder

# What a checkpoint file starts with: torch's zip container, or a legacy protocol-2 pickle.
CHECKPOINT_MAGICS = (b"PK\x03\x04", b"\x80\x02")
MIRROR_ENV = "SANET_MIRROR"


class FetchError(PipelineError):
    """No source could deliver a checkpoint."""


class ChecksumMismatch(FetchError):
    """A download completed but its sha256 is not the locked one: never installed."""


@dataclass(frozen=True)
class Source:
    kind: str  # "mirror", "yandex" or "github"
    location: str  # a URL, or a folder for a directory mirror

    def __str__(self) -> str:
        return f"{self.kind} {self.location}"


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
    """Checkpoints from ordered sources, verified, installed atomically."""

    def __init__(
        self,
        settings: FetchSettings,
        session: requests.Session | None = None,
        validate: Validator | None = None,
    ) -> None:
        self.http = HTTPDownloader(settings, session)
        # Trust on first use must not pin a corrupt file: with no sum to check against, the
        # bytes are first validated as the checkpoint they claim to be.
        self.validate = validate

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
            origin = Path(source.location) / name
            part = _part_path(dest, str(origin))
            copy_from_folder(origin, part)
            _check_magic(part)
            return part, str(origin)
        if source.kind == "mirror":
            url = source.location.rstrip("/") + "/" + name
        elif source.kind == "yandex":
            url = self.http.resolve_yandex(source.location)
        else:
            url = source.location
        part = _part_path(dest, url)
        try:
            self.http.download(url, part, name)
            _check_magic(part)
        except SourceFailed as exc:
            raise SourceFailed(f"{url}: {exc}") from None
        return part, url
