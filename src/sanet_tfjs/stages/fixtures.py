"""Stage `fixtures` (tasks/fixtures.py).

Seeded stand-in checkpoints (not trained weights) in the exact upstream format, for the fixture
profile. Its logic is in fixtures.py; this module is its entry point.
"""

from __future__ import annotations

from pathlib import Path

from ..fixtures import write_fixture_checkpoints


def run_fixtures_stage(out_dir: str, seed: int, width_divisor: int) -> None:
    for path in write_fixture_checkpoints(Path(out_dir), seed, width_divisor):
        print(f"  {path.name}: {path.stat().st_size / 1e6:.1f} MB (seed {seed})")
