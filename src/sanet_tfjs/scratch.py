"""A stage's temporary files, in one folder of its own that is removed even if the build is killed.

Stages and the tools they start write temporary files: Chromium's and Playwright's profiles,
Node's test cases, the converter's raw output. A build killed with SIGKILL runs no cleanup, so
those were left in the temp folder for good. Here each stage points TMPDIR (which its children
inherit) and Python's `tempfile` at a fresh folder `sanet-build-<pid>-*` in the system's temp
folder, removes it when the stage ends, and starts a reaper beside it: a small process in a
session of its own that waits on a pipe from the build and removes the folder when the pipe
closes without the build saying it is done, that is, when the build died. A folder whose build
and reaper both died (a machine that stopped) is removed by the next build.

The folder is not under artifacts/: Chromium puts its singleton socket in TMPDIR, and a Unix
socket path has at most 107 bytes, which a deep checkout exceeds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

SCRATCH_PREFIX = "sanet-build-"  # then the build's pid, a dash and a random part
REAPER_RETRY_S = 0.25
REAPER_TRIES = 240  # Chromium may write into its profile a while after a kill (10 s and more)
# A folder left behind after a kill was seen twice under load (the suite, a fresh clone's CI)
# with no process of the build left: a dying Chromium may write into its profile again after the
# folder was removed. The reaper stops only once the folder stayed gone this long.
REAPER_SETTLE_S = 5
DONE = b"done"

# Runs with `python -S -c`: nothing imported but what it needs, no site-packages.
REAPER = f"""
import os, shutil, sys, time
if sys.stdin.buffer.read() != {DONE!r}:
    gone_since = None
    for _ in range({REAPER_TRIES}):
        shutil.rmtree(sys.argv[1], ignore_errors=True)
        if os.path.exists(sys.argv[1]):
            gone_since = None
        elif gone_since is None:
            gone_since = time.monotonic()
        elif time.monotonic() - gone_since >= {REAPER_SETTLE_S}:
            break
        time.sleep({REAPER_RETRY_S})
"""


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: running
        return True
    return True


def sweep(parent: Path) -> list[Path]:
    """Remove the scratch folders in `parent` whose build no longer runs; returns them."""
    removed = []
    for folder in sorted(parent.glob(f"{SCRATCH_PREFIX}*")):
        pid = folder.name.removeprefix(SCRATCH_PREFIX).split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


@contextlib.contextmanager
def build_scratch() -> Iterator[Path]:
    """Inside the block TMPDIR and `tempfile` point at a fresh scratch folder, removed at the
    end of the block, or by its reaper if the process dies inside it."""
    parent = Path(tempfile.gettempdir())
    sweep(parent)
    own = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=parent))
    reaper = subprocess.Popen(
        [sys.executable, "-S", "-c", REAPER, str(own)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a kill of the build's process group leaves it running
    )
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
        if own.exists():  # something still writes there: the reaper retries on its own
            reaper.stdin.close()
        else:
            reaper.communicate(DONE)  # it exits at once
