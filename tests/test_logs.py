"""Quiet stage logs: TensorFlow's native log lines filtered from descriptor 2, nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from sanet_tfjs.logs import NATIVE_LOG_LINE, TF_LOGS_ENV, without_native_logs
from tests.conftest import ROOT

NATIVE = (
    b"W0000 00:00:1795942009.293981    3913 op_level_cost_estimator.cc:699] Error in "
    b'PredictCost() for the op: op: "Softmax"\n'
)
ABSL_NOTICE = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
)
FATAL = b"F0000 00:00:1.0 1 x.cc:1] fatal\n"


def test_only_native_log_lines_are_dropped() -> None:
    text = b"step 1\r" + NATIVE + b"  tfjs: 3 MB\n" + ABSL_NOTICE + FATAL + b"half"
    lines, rest = without_native_logs(text)
    assert lines == [b"step 1\r", b"  tfjs: 3 MB\n", FATAL]
    assert rest == b"half"
    assert not NATIVE_LOG_LINE.match(b"Traceback (most recent call last):\n")


def _child_stderr(body: str, **env: str) -> bytes:
    """stderr of a child Python running `body` inside quiet_native_logs()."""
    script = "import os, sys\nfrom sanet_tfjs.logs import quiet_native_logs\n" + (
        "with quiet_native_logs():\n" + textwrap.indent(textwrap.dedent(body), "    ")
    )
    environment = {k: v for k, v in os.environ.items() if k != TF_LOGS_ENV}
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**environment, "PYTHONPATH": str(ROOT / "src"), **env},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stderr


WRITES = f"""
os.write(2, {NATIVE!r})
print("kept", file=sys.stderr, flush=True)
os.system("printf 'from a child\\\\r' >&2")
os.write(2, {ABSL_NOTICE!r})
"""


def test_a_stage_sees_its_own_lines_and_not_native_ones() -> None:
    assert _child_stderr(WRITES) == b"kept\nfrom a child\r"


def test_the_environment_variable_lets_native_lines_through() -> None:
    assert _child_stderr(WRITES, **{TF_LOGS_ENV: "1"}) == (
        NATIVE + b"kept\nfrom a child\r" + ABSL_NOTICE
    )


def test_tensorflow_at_work_prints_no_native_lines() -> None:
    # Grappler costs the ops of a traced function (the source of the build's W0000 lines).
    stderr = _child_stderr(
        """
        import tensorflow as tf
        f = tf.function(lambda x: tf.nn.softmax(tf.matmul(x, x)))
        f(tf.ones([4, 4]))
        print("done", file=sys.stderr)
        """
    )
    assert stderr.splitlines() == [b"done"], stderr.decode()[-2000:]


def test_absl_info_notes_stay_quiet_even_when_a_library_raises_the_verbosity() -> None:
    # onnx-tf's pooling handler calls absl's set_verbosity(INFO) in the middle of a conversion
    stderr = _child_stderr(
        """
        import logging
        from absl import logging as absl_logging
        logging.basicConfig()
        absl_logging.set_verbosity(absl_logging.INFO)
        absl_logging.info("Writing fingerprint")
        absl_logging.warning("a real warning")
        """
    )
    assert b"Writing fingerprint" not in stderr and b"a real warning" in stderr
