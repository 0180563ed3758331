"""Stage `release` (tasks/release.py).

A reproducible archive of the deployable site, with provenance. Its logic is in release.py; this
module is its entry point.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from ..files import atomic_output, sha256_file
from ..release import (
    ARCHIVE,
    manifest,
    source_date_epoch,
    write_archive,
)


def run_release_stage(
    site_dir: str,
    parity_path: str,
    smoke_path: str,
    lock_path: str,
    lock_key: str,
    config_path: str,
    out_dir: str,
) -> dict:
    epoch = source_date_epoch()
    lock = json.loads(Path(lock_path).read_text())["checkpoints"][lock_key]
    parity = json.loads(Path(parity_path).read_text())
    smoke = json.loads(Path(smoke_path).read_text())
    with atomic_output(Path(out_dir)) as staged:
        staged.mkdir()
        write_archive(Path(site_dir), staged / ARCHIVE, epoch)
        data = manifest(parity, smoke, lock, Path(config_path), epoch)
        data["archive"] = {"file": ARCHIVE, "sha256": sha256_file(staged / ARCHIVE)}
        (staged / "manifest.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        sums = io.StringIO()
        for name in (ARCHIVE, "manifest.json"):
            sums.write(f"{sha256_file(staged / name)}  {name}\n")
        (staged / "SHA256SUMS").write_text(sums.getvalue())
    print(f"  release: {out_dir}/{ARCHIVE} sha256 {data['archive']['sha256']}")
    return {"archive_sha256": data["archive"]["sha256"]}
