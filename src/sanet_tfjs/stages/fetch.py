"""Stage `fetch` (tasks/fetch.py).

Fetching the upstream checkpoints: ordered sources, resume, retries, sha256 lock, atomic
install. Its logic is in the fetch/ package; this module is its entry point, and fetches the
three checkpoints against the lock.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..architecture import CHECKPOINT_FILES
from ..fetch.downloaders import FetchSettings
from ..fetch.fetcher import (
    CheckpointFetcher,
    ChecksumMismatch,
    FetchResult,
    Validator,
    resolve_mirror,
    sources_for,
)
from ..fetch.lock import ChecksumLock


def run_fetch_stage(
    key: str,
    out_dir: str,
    lock_path: str,
    fixture_dir: str | None,
    width_divisor: int,
    mirror_override: str = "",
    **fetch: Any,
) -> dict[str, str]:
    """The `fetch` stage: all three checkpoints into `out_dir`; returns their sha256 sums.

    `fetch` holds pipeline.yaml's fetch keys; `mirror_override` is `doit fetch --mirror`. In
    the fixture profile a loopback server stands in for the upstream hosts, serving the
    generated checkpoints from `fixture_dir`, and the same download code runs against it.
    """
    from ..settings.fetch import FetchSection

    section = FetchSection.model_validate(fetch)
    settings = FetchSettings(
        connect_timeout_s=section.connect_timeout_s,
        read_timeout_s=section.read_timeout_s,
        retries=section.retries,
        backoff_s=section.backoff_s,
        yandex_api=section.yandex_api,
    )
    fetcher = CheckpointFetcher(settings, validate=checkpoint_validator(width_divisor))
    lock = ChecksumLock.read(Path(lock_path))
    if fixture_dir is not None:
        from ..server import serve_directory

        with serve_directory(Path(fixture_dir)) as server:
            no_upstream = {name: {} for name in CHECKPOINT_FILES}
            results = fetch_checkpoints(fetcher, no_upstream, server.url, Path(out_dir), lock, key)
    else:
        links = {name: sources.model_dump() for name, sources in section.checkpoints.items()}
        chosen = resolve_mirror(section.mirror, mirror_override or None)
        results = fetch_checkpoints(fetcher, links, chosen, Path(out_dir), lock, key)
    for result in results.values():
        origin = "already in place" if not result.downloaded else f"from {result.source.kind}"
        print(f"  {result.name}: {result.size / 1e6:.1f} MB, sha256 {result.sha256[:16]}… {origin}")
    return {name: result.sha256 for name, result in results.items()}


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
        from ..checkpoints import validate_checkpoint  # torch: only when a file is new

        validate_checkpoint(path, name, width_divisor)

    return validate
