"""A build's temporary files live under artifacts/.scratch/<pid>/, never in the system temp.

Stages and the tools they start write temporary files: Chromium's and Playwright's profiles,
Node's test cases, the converter's raw output. A build killed with SIGKILL runs no cleanup, so
those were left in /tmp for good. Here each build process points TMPDIR (which its children
inherit) and Python's `tempfile` at a folder of its own, removes it when the stage ends, and
removes the folders of build processes that no longer run before it starts: what a killed
build left is gone at the next build, and nothing is ever left outside artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

SCRATCH_DIR = ".scratch"  # under artifacts/; hidden, so no report or sums ever lists it


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def sweep(root: Path) -> list[Path]:
    """Remove the scratch folders under `root` whose build process no longer runs; returns them."""
    if not root.is_dir():
        return []
    removed = []
    for folder in sorted(root.iterdir()):
        if folder.name.isdigit() and int(folder.name) != os.getpid() and _running(int(folder.name)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


@contextlib.contextmanager
def build_scratch(artifacts: Path) -> Iterator[Path]:
    """Inside the block TMPDIR and `tempfile` point at artifacts/.scratch/<this pid>/, created
    empty; it is removed at the end of the block, and first the folders of dead builds are."""
    root = Path(artifacts) / SCRATCH_DIR
    sweep(root)
    own = root / str(os.getpid())
    own.mkdir(parents=True)
    previous_env, previous_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(own)
    try:
        yield own
    finally:
        tempfile.tempdir = previous_tempdir
        if previous_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous_env
        shutil.rmtree(own, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.rmdir()  # only if no other build's folder is there
