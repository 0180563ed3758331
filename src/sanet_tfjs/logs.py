"""Quiet stage logs: TensorFlow's native (C++/absl) log lines kept out of the build's output.

TensorFlow 2.19 writes its C++ logs through absl, some before absl is initialised, straight
to file descriptor 2, and TF_CPP_MIN_LOG_LEVEL does not reach all of them: a clean build
printed hundreds of "W0000 ... op_level_cost_estimator.cc ... PredictCost()" lines (Grappler
costing ops it has no model for) and CUDA-probing errors on machines without a GPU. None is a
failure (failures arrive as Python exceptions with their message), so each stage runs with its
descriptor 2 read through a filter that drops exactly those lines; the rest, progress bars'
carriage returns included, passes unchanged. SANET_TF_LOGS=1 lets them through.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

TF_LOGS_ENV = "SANET_TF_LOGS"
# absl's line prefix, info to error ("W1129 09:05:13.293981 3913 file.cc:123] "; before absl
# is initialised the time reads "00:00:<seconds since 1970>"): fatal ones (F) stay visible.
# And absl's notice that logs precede its initialisation.
NATIVE_LOG_LINE = re.compile(
    rb"(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] |"
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called)"
)
_LINE_END = re.compile(rb"(?<=[\r\n])")
_terminal: bool | None = None  # whether descriptor 2 was a terminal before the filter


def native_logs_wanted() -> bool:
    return os.environ.get(TF_LOGS_ENV, "") not in ("", "0")


def stderr_is_terminal() -> bool:
    """Whether the user sees stderr on a terminal (the filter's pipe is not one)."""
    return sys.stderr.isatty() if _terminal is None else _terminal


def without_native_logs(text: bytes) -> tuple[list[bytes], bytes]:
    """The complete lines of `text` (ended by \\n or \\r) that are not native log lines, and
    the unfinished rest."""
    *lines, rest = _LINE_END.split(text)
    return [line for line in lines if not NATIVE_LOG_LINE.match(line)], rest


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Within it, what is written to file descriptor 2 (by Python, C++ or a child process that
    inherits it) reaches it without native log lines; untouched if SANET_TF_LOGS is set."""
    global _terminal
    if native_logs_wanted() or _terminal is not None:
        yield
        return
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    _terminal = os.isatty(original)
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward() -> None:
        rest = b""
        while chunk := os.read(read_end, 1 << 16):
            lines, rest = without_native_logs(rest + chunk)
            for line in lines:
                os.write(original, line)
        if rest and not NATIVE_LOG_LINE.match(rest):
            os.write(original, rest)
        os.close(read_end)

    forwarder = threading.Thread(target=forward, name="quiet-native-logs", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # drops the pipe's last write end here: the forwarder sees EOF
        # A child that outlives the stage and still holds the pipe keeps it open: do not wait
        # for it, and leave the forwarder its descriptor.
        forwarder.join(timeout=5)
        if not forwarder.is_alive():
            os.close(original)
        _terminal = None
