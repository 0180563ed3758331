"""Kills a build from inside a stage: the interrupted-builds scenario (tests/hardening.py).

Python imports this at start-up in every process of a build that the scenario starts with this
folder on PYTHONPATH; it does nothing unless SANET_TEST_KILL_ON_WRITE is set. That variable holds
glob patterns (JSON) of a stage's unfinished output: its staged temporaries, partial downloads,
its sums file in progress. The first time a Python process of the build opens such a file for
writing, the build's whole process group (doit, its Python children, node) gets SIGKILL
(Playwright's Chromium has a group of its own; it exits when its driver dies). So the kill
lands inside the stage by construction, whatever the machine's load: no timing.

Python's audit hook sees only opens made through Python. Files written by torch's or
TensorFlow's C++ writers (checkpoints, SavedModels) are not seen: in fixtures, patch, tf and
tfstyle the kill comes at the first file the stage writes from Python (a report, the sums),
after those.
"""

from __future__ import annotations

import fnmatch
import json
import os
import signal
import sys

_PATTERNS = json.loads(os.environ.get("SANET_TEST_KILL_ON_WRITE", "[]"))
_GROUP = "SANET_TEST_KILL_GROUP"
_WRITING = os.O_WRONLY | os.O_RDWR


def _kill_on_write(event: str, args: tuple) -> None:
    if event != "open":
        return
    path, _mode, flags = args
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not isinstance(flags, int) or not flags & _WRITING:
        return
    if any(fnmatch.fnmatchcase(os.path.abspath(path), pattern) for pattern in _PATTERNS):
        os.killpg(int(os.environ[_GROUP]), signal.SIGKILL)


if _PATTERNS:
    if _GROUP not in os.environ:  # the build's first process: its group is the build
        if os.getsid(0) != os.getpid():
            sys.exit("kill_switch: start the build in a new session; it kills its process group")
        os.environ[_GROUP] = str(os.getpgrp())
    sys.addaudithook(_kill_on_write)
