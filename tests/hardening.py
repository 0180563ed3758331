"""Hardening scenarios: every network fault and bad input tried, counted, and its outcome checked.

    PYTHONPATH=src .venv/bin/python -m tests.hardening            # runs them all, prints the table
    PYTHONPATH=src .venv/bin/python -m tests.hardening --write    # and writes docs/hardening.md

Each scenario runs its fault or input a number of times and checks, every time, the designed
outcome: recovered and verified, or stopped with a message that names the problem, and in
either case nothing partial or unverified at a final path. tests/test_hardening.py runs the same
scenarios and fails if any outcome differs or docs/hardening.md is not what they produce; the
tampered artifacts are rows of the invalidation matrix (tests/test_pipeline.py), which runs
them in the suite, so test_hardening only counts them. The interrupted and tampered builds run
doit at width 1/8 (a few minutes in all). The remote build cache's faults run against a real
SeaweedFS on loopback (tests/seaweed.py), one server per process.
"""

from __future__ import annotations

import argparse
import atexit
import concurrent.futures
import contextlib
import datetime
import functools
import glob
import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sanet_tfjs.architecture import CHECKPOINT_FILES, DECODER_FILE, TRANSFORM_FILE, VGG_FILE
from sanet_tfjs.cache.actionresult import ActionResult
from sanet_tfjs.cache.actionresult import OutputFile as CacheFile
from sanet_tfjs.cache.actionresult import decode as decode_entry
from sanet_tfjs.cache.actionresult import encode as encode_entry
from sanet_tfjs.cache.store import S3Store
from sanet_tfjs.checkpoints import CheckpointError, load_checkpoint
from sanet_tfjs.config import ConfigError, parse_config
from sanet_tfjs.fetch.downloaders import NETWORK_CHUNK, FetchSettings
from sanet_tfjs.fetch.fetcher import CheckpointFetcher, FetchError, Source
from sanet_tfjs.fetch.lock import ChecksumLock
from sanet_tfjs.files import sha256_file
from sanet_tfjs.fixtures import fixture_state_dicts, write_fixture_checkpoints
from sanet_tfjs.scratch import REAPER_RETRY_S, REAPER_TRIES
from sanet_tfjs.server import serve_directory
from sanet_tfjs.stages.fetch import checkpoint_validator, fetch_checkpoints
from tasks.layout import OUTPUTS, sums_file
from tests.conftest import (
    ALL_STAGES,
    DOIT_TIMEOUT_S,
    ROOT,
    ScratchPipeline,
    artifact_sums,
    differences,
    doit_command,
    executed_in,
    reference_build,
    run_doit,
    run_doit_process,
    tiny_repo,
)
from tests.loopback import FaultPlan, faulty_server
from tests.seaweed import BUCKET, SeaweedServer, cutting_proxy, free_ports, seaweed_server

TABLE_PATH = ROOT / "docs" / "hardening.md"
WIDTH = 8
FILE_PATH = f"/files/{DECODER_FILE}"
READ_TIMEOUT_S = 0.5
RETRIES = 3  # 4 attempts per source


@dataclass(frozen=True)
class Scenario:
    area: str
    fault: str
    designed: str  # the outcome every run must have
    run: Callable[[Path], int]  # runs the scenario in a scratch folder; returns the run count
    slow: bool = False  # builds the pipeline (left out of the fast tier unless runs_elsewhere)
    # The number of runs, when other tests of the suite make them: test_hardening then only
    # counts them (and stays in the fast tier); this module's CLI still runs them.
    runs_elsewhere: Callable[[], int] | None = None


class Wrong(AssertionError):
    """A run whose outcome was not the designed one."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise Wrong(what)


# --- network faults, against the fetch code ---------------------------------------------------


class Served:
    """Tiny upstream-format checkpoints under files/ of a folder, and their sums."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        write_fixture_checkpoints(folder / "files", seed=5, width_divisor=WIDTH)
        self.path = folder / "files" / DECODER_FILE
        self.size = self.path.stat().st_size
        self.sha256 = sha256_file(self.path)
        self.other = (folder / "files" / TRANSFORM_FILE).read_bytes()  # a valid, wrong file


def fetch_once(served: Served, plan: FaultPlan, scratch: Path, pinned: bool) -> str | None:
    """Fetch the decoder through the faulty server into a fresh folder; return None when it
    was installed and verified, else the error message. Checks the final path either way."""
    dest_dir = Path(tempfile.mkdtemp(dir=scratch))
    dest = dest_dir / DECODER_FILE
    fetcher = CheckpointFetcher(
        FetchSettings(
            connect_timeout_s=2,
            read_timeout_s=READ_TIMEOUT_S,
            retries=RETRIES,
            backoff_s=0.01,
            yandex_api="http://127.0.0.1:9/unused",
            progress=False,
        )
    )
    with faulty_server(served.folder, plan) as server:
        sources = [Source("github", server.url + FILE_PATH)]
        try:
            fetcher.fetch(DECODER_FILE, dest, sources, served.sha256 if pinned else None)
            error = None
        except FetchError as exc:
            error = str(exc)
    if error is None:
        expect(sha256_file(dest) == served.sha256, "installed bytes differ from the served file")
        expect(not list(dest_dir.glob(".*.part")), "a partial file was left after success")
    else:
        expect(not dest.exists(), f"a file was left at the final path after: {error}")
        expect(DECODER_FILE in error, f"the message does not name the file: {error}")
    return error


def recovers(plans: list[Callable[[Served], FaultPlan]], pinned: bool = True):
    def run(scratch: Path) -> int:
        served = Served(scratch / "served")
        for make_plan in plans:
            error = fetch_once(served, make_plan(served), scratch, pinned)
            expect(error is None, f"expected recovery, got: {error}")
        return len(plans)

    return run


def stops(plans: list[Callable[[Served], FaultPlan]], words: str, pinned: bool = True):
    def run(scratch: Path) -> int:
        served = Served(scratch / "served")
        for make_plan in plans:
            error = fetch_once(served, make_plan(served), scratch, pinned)
            expect(error is not None, "expected a stop, but the file was installed")
            expect(words in error, f"expected {words!r} in the message: {error}")
        return len(plans)

    return run


def network_scenarios() -> list[Scenario]:
    drop_points = [1, NETWORK_CHUNK + 100]
    area = "network (fetch)"
    return [
        Scenario(
            area,
            "connection dropped after N bytes (N = 1, 64 KiB + 100, size - 1)",
            "resumed with Range, verified, installed",
            recovers(
                [lambda _, n=n: FaultPlan(drops={FILE_PATH: [n]}) for n in drop_points]
                + [lambda s: FaultPlan(drops={FILE_PATH: [s.size - 1]})]
            ),
        ),
        Scenario(
            area,
            "HTTP 500 / 503 for K requests (K = 1, 2, 3), then the file",
            "retried with backoff, verified, installed",
            recovers(
                [
                    lambda _, k=k: FaultPlan(statuses={FILE_PATH: [500, 503, 503][:k]})
                    for k in (1, 2, 3)
                ]
            ),
        ),
        Scenario(
            area,
            "HTTP 503 on every request",
            "stopped: 'HTTP 503 (gave up after 4 attempts)', nothing installed",
            stops(
                [lambda _: FaultPlan(statuses={FILE_PATH: [503] * 10})],
                "HTTP 503 (gave up after 4 attempts)",
            ),
        ),
        Scenario(
            area,
            f"stall longer than the read timeout ({READ_TIMEOUT_S} s): before the headers, "
            "or after 64 KiB of the body",
            "timed out, retried (resumed), verified, installed",
            recovers(
                [
                    lambda _: FaultPlan(stalls={FILE_PATH: [(-1, 1.5)]}),
                    lambda _: FaultPlan(stalls={FILE_PATH: [(NETWORK_CHUNK, 1.5)]}),
                ]
            ),
        ),
        Scenario(
            area,
            "stall longer than the read timeout on every request",
            "stopped: 'gave up after 4 attempts', nothing installed",
            stops(
                [lambda _: FaultPlan(stalls={FILE_PATH: [(-1, 1.0)] * 4})],
                "gave up after 4 attempts",
            ),
        ),
        Scenario(
            area,
            "short body, clean close, Content-Length promising the whole file "
            "(1 KiB, half the file)",
            "counted as dropped, resumed, verified, installed",
            recovers(
                [
                    lambda _: FaultPlan(short={FILE_PATH: [1024]}),
                    lambda s: FaultPlan(short={FILE_PATH: [s.size // 2]}),
                ]
            ),
        ),
        Scenario(
            area,
            "redirect loop (302 to itself)",
            "stopped: 'too many redirects', nothing installed",
            stops([lambda _: FaultPlan(redirect_loop={FILE_PATH})], "too many redirects"),
        ),
        Scenario(
            area,
            "HTML page instead of the file (a host's interstitial)",
            "stopped: 'HTML page instead of the file', nothing installed",
            stops([lambda _: FaultPlan(html={FILE_PATH})], "HTML page instead of the file"),
        ),
        Scenario(
            area,
            "Range ignored after a dropped connection (200 with the whole file)",
            "restarted from byte 0 (no splice), verified, installed",
            recovers(
                [
                    lambda _: FaultPlan(
                        drops={FILE_PATH: [NETWORK_CHUNK + 100]}, ignore_range={FILE_PATH}
                    )
                ]
            ),
        ),
        Scenario(
            area,
            "wrong bytes: another valid checkpoint, sum pinned in the lock",
            "stopped: 'wrong sha256' with both sums, nothing installed",
            stops([lambda s: FaultPlan(substitute={FILE_PATH: s.other})], "has the wrong sha256"),
        ),
        Scenario(
            area,
            "wrong bytes: not a checkpoint at all, nothing pinned yet",
            "stopped: 'not a PyTorch checkpoint', nothing installed",
            stops(
                [lambda _: FaultPlan(substitute={FILE_PATH: b"\x00" * 5000})],
                "not a PyTorch checkpoint",
                pinned=False,
            ),
        ),
    ]


# --- untrusted checkpoints --------------------------------------------------------------------


class _ShellPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _ExecPayload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def malicious_pickles(folder: Path, marker: Path) -> list[Path]:
    """Booby-trapped checkpoints: in the zip format, the legacy format, and as a raw pickle,
    with shell and exec payloads."""
    layouts = {
        "zip-shell": lambda p: torch.save({"1.weight": _ShellPayload(marker)}, p),
        "zip-exec": lambda p: torch.save({"1.weight": _ExecPayload(marker)}, p),
        "legacy-exec": lambda p: torch.save(
            _ExecPayload(marker), p, _use_new_zipfile_serialization=False
        ),
        "raw-shell": lambda p: p.write_bytes(pickle.dumps(_ShellPayload(marker), protocol=2)),
    }
    paths = []
    for name, write in layouts.items():
        path = folder / name / DECODER_FILE
        path.parent.mkdir(parents=True)
        write(path)
        paths.append(path)
    return paths


def rejects(mutations: dict[str, Callable[[dict], dict]], words: str):
    """Each mutation of the tiny transform checkpoint is rejected with `words` in the error."""

    def run(scratch: Path) -> int:
        base = fixture_state_dicts(seed=3, width_divisor=WIDTH)[TRANSFORM_FILE]
        for name, mutate in mutations.items():
            path = scratch / name / TRANSFORM_FILE
            path.parent.mkdir(parents=True)
            torch.save(mutate(dict(base)), path)
            refused(path, words)
        return len(mutations)

    return run


def _with(key: str, value: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[dict], dict]:
    def mutate(state: dict) -> dict:
        state[key] = value(state[key])
        return state

    return mutate


def _poisoned(number: float) -> Callable[[torch.Tensor], torch.Tensor]:
    def poison(tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        tensor.view(-1)[tensor.numel() // 2] = number
        return tensor

    return poison


def refused(path: Path, words: str = "") -> None:
    """`path` is rejected by the checkpoint loader, with a message naming it (and `words`)."""
    try:
        load_checkpoint(path, WIDTH)
    except CheckpointError as exc:
        expect(str(path) in str(exc) and words in str(exc), f"unclear error for {path}: {exc}")
        return
    raise Wrong(f"{path} was accepted")


def _pickles_never_run(scratch: Path) -> int:
    marker = scratch / "payload-ran"
    paths = malicious_pickles(scratch, marker)
    for path in paths:
        refused(path)
        expect(not marker.exists(), f"the payload in {path} ran")
    return len(paths)


def _truncations_rejected(scratch: Path) -> int:
    states = fixture_state_dicts(seed=3, width_divisor=WIDTH)
    runs = 0
    for name in (VGG_FILE, DECODER_FILE, TRANSFORM_FILE):
        whole = scratch / name
        torch.save(states[name], whole)
        data = whole.read_bytes()
        for length in (0, 10, len(data) // 2, len(data) - 1):
            cut = scratch / f"cut-{length}" / name
            cut.parent.mkdir(exist_ok=True)
            cut.write_bytes(data[:length])
            refused(cut)
            runs += 1
    return runs


def _first_use_never_pins_a_bad_file(scratch: Path) -> int:
    """A first fetch (no lock entry) from a mirror folder or over HTTP of a bad decoder, then
    of the good one, then of a wrong one against the sum just pinned."""
    served = Served(scratch / "served")
    other_width = io.BytesIO()
    torch.save(fixture_state_dicts(5, WIDTH // 2)[DECODER_FILE], other_width)
    good = served.path.read_bytes()
    bad = {
        "truncated to half (a mirror's partial copy)": good[: len(good) // 2],
        "truncated by 1000 bytes": good[:-1000],
        "another checkpoint (the transformer)": served.other,
        "the decoder at another width": other_width.getvalue(),
    }
    runs = 0
    for label, data in bad.items():
        for over_http in (False, True):
            folder = Path(tempfile.mkdtemp(dir=scratch))
            for name in CHECKPOINT_FILES:
                shutil.copyfile(served.folder / "files" / name, folder / name)
            (folder / DECODER_FILE).write_bytes(data)
            dest_dir = folder / "installed"
            lock = ChecksumLock.read(folder / "lock.json")
            fetcher = CheckpointFetcher(
                FetchSettings(retries=0, backoff_s=0.0, progress=False),
                validate=checkpoint_validator(WIDTH),
            )
            links = {name: {} for name in CHECKPOINT_FILES}
            with serve_directory(folder) if over_http else contextlib.nullcontext() as server:
                mirror = server.url if over_http else str(folder)
                try:
                    fetch_checkpoints(fetcher, links, mirror, dest_dir, lock, "key")
                    error = None
                except FetchError as exc:
                    error = str(exc)
                expect(error is not None, f"{label}: installed")
                expect(DECODER_FILE in error and "not a valid" in error, f"{label}: {error}")
                expect(not (dest_dir / DECODER_FILE).exists(), f"{label}: left at the final path")
                locked = json.loads((folder / "lock.json").read_text())["checkpoints"]["key"]
                expect(DECODER_FILE not in locked, f"{label}: its sum was recorded in the lock")
                # The user replaces the mirror's copy: the good file installs and is pinned.
                (folder / DECODER_FILE).write_bytes(good)
                fetch_checkpoints(
                    fetcher, links, mirror, dest_dir, ChecksumLock.read(lock.path), "key"
                )
                expect(
                    sha256_file(dest_dir / DECODER_FILE) == served.sha256, f"{label}: not installed"
                )
                # A wrong file against that pin: the message names the entry to delete.
                (dest_dir / DECODER_FILE).unlink()
                (folder / DECODER_FILE).write_bytes(served.other)
                try:
                    fetch_checkpoints(
                        fetcher, links, mirror, dest_dir, ChecksumLock.read(lock.path), "key"
                    )
                    error = None
                except FetchError as exc:
                    error = str(exc)
                entry = f'"checkpoints" -> "key" -> "{DECODER_FILE}"'
                expect(
                    error is not None and entry in error, f"{label}: lock entry not named: {error}"
                )
            runs += 1
    return runs


def checkpoint_scenarios() -> list[Scenario]:
    area = "untrusted checkpoints"
    key = "sanet4_1.f.weight"
    return [
        Scenario(
            area,
            "malicious pickles: zip/legacy/raw layouts, os.system and exec payloads",
            "refused by weights_only loading; the payload never runs",
            _pickles_never_run,
        ),
        Scenario(
            area,
            "missing tensor",
            f"rejected: \"missing tensor '{key}'\"",
            rejects({"missing": lambda s: {k: v for k, v in s.items() if k != key}}, "missing"),
        ),
        Scenario(
            area,
            "extra tensor",
            "rejected: 'unexpected tensor', named",
            rejects(
                {"extra": lambda s: {**s, "sanet4_1.extra.weight": torch.zeros(1)}},
                "unexpected tensor 'sanet4_1.extra.weight'",
            ),
        ),
        Scenario(
            area,
            "mis-shaped tensor (one output channel short, flattened, an extra axis)",
            "rejected: 'has shape ..., expected ...', named",
            rejects(
                {
                    "short": _with(key, lambda t: t[:-1].clone()),
                    "flat": _with(key, lambda t: t.flatten()),
                    "extra-axis": _with(key, lambda t: t.unsqueeze(0)),
                },
                f"'{key}' has shape",
            ),
        ),
        Scenario(
            area,
            "NaN, +Inf, -Inf in a weight",
            "rejected: 'contains NaN or Inf', named",
            rejects(
                {
                    str(number): _with(key, _poisoned(number))
                    for number in (math.nan, math.inf, -math.inf)
                },
                f"'{key}' contains NaN or Inf",
            ),
        ),
        Scenario(
            area,
            "wrong dtype (float64, float16, int64)",
            "rejected: 'has dtype ...', named",
            rejects(
                {
                    str(dtype): _with(key, lambda t, d=dtype: t.to(d))
                    for dtype in (torch.float64, torch.float16, torch.int64)
                },
                f"'{key}' has dtype",
            ),
        ),
        Scenario(
            area,
            "first fetch, nothing pinned yet, from a mirror folder or over HTTP: the decoder "
            "truncated to half or by 1000 bytes, another checkpoint in its place, the decoder "
            "at another width; then the good file; then a wrong one against its new pin",
            "validated before its sum is recorded: refused as 'not a valid' file, nothing at "
            "the final path, no lock entry; the good file then installs and is pinned; a "
            "mismatch with the pin names the lock entry to delete",
            _first_use_never_pins_a_bad_file,
        ),
        Scenario(
            area,
            "truncated file (0, 10 bytes, half, all but 1 byte) of each checkpoint",
            "rejected: named as truncated or corrupt",
            _truncations_rejected,
        ),
    ]


# --- pipeline.yaml ----------------------------------------------------------------------------

FUZZ_EXAMPLES = 400
_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
_documents = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)


# Derandomized, generation only: the same examples, and count, wherever it runs.
FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES // 2,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)


def _config_survives(document: object) -> bool:
    """True when it loads; False on the clean validation error; anything else propagates."""
    try:
        parse_config(document)
    except ConfigError as exc:
        expect("pipeline.yaml" in str(exc), f"the error does not name the file: {exc}")
        return False
    return True


def _fuzz_config(scratch: Path) -> int:  # noqa: ARG001 - nothing to write
    valid = yaml.safe_load((ROOT / "pipeline.yaml").read_text())
    count = 0

    @FUZZ_SETTINGS
    @given(_documents)
    def random_documents(document: object) -> None:
        nonlocal count
        _config_survives(document)
        count += 1

    @FUZZ_SETTINGS
    @given(st.sampled_from(sorted(valid)), st.data())
    def one_bad_value(section: str, data: st.DataObject) -> None:
        nonlocal count
        document = yaml.safe_load(yaml.safe_dump(valid))
        if isinstance(document[section], dict) and document[section]:
            key = data.draw(st.sampled_from(sorted(document[section])))
            document[section][key] = data.draw(_documents)
        else:
            document[section] = data.draw(_documents)
        _config_survives(document)
        count += 1

    random_documents()
    one_bad_value()
    return count


def config_scenarios() -> list[Scenario]:
    return [
        Scenario(
            "pipeline.yaml",
            "fuzzed documents (hypothesis): random YAML values, and the valid file with one "
            "value replaced by a random one",
            "loads, or stops with the validation error naming the file and key; no crash",
            _fuzz_config,
        )
    ]


# --- interrupted and tampered builds (doit at width 1/8) ----------------------------------------


def leftovers(artifacts: Path) -> list[str]:
    """Temporary and partial files under artifacts/ (doit's and our own caches aside)."""
    return sorted(
        str(path.relative_to(artifacts)) for path in artifacts.rglob("*")
        if path.name.endswith((".tmp", ".part"))
    )  # fmt: skip


KILL_SWITCH = Path(__file__).parent / "kill_switch"  # its sitecustomize.py does the killing


def unfinished_output_patterns(artifacts: Path, stage: str) -> list[str]:
    """Globs of what `stage` writes before it is done: its outputs staged beside their final
    place (files.atomic_output), partial downloads (fetch), and its sums file in progress."""
    root = glob.escape(str(artifacts.resolve()))  # the build's processes open resolved paths
    tops = sorted({path.split("/")[0] for path in OUTPUTS[stage].all})
    sums = Path(sums_file(stage))
    return [
        *(f"{root}/.{top}.*.tmp/*" for top in tops),
        *(f"{root}/{top}/.*.part" for top in tops),
        f"{root}/{sums.parent}/.{sums.name}.*.tmp/*",
    ]


def kill_inside(
    copy: Path, pipeline: ScratchPipeline, stage: str, tmpdir: Path | None = None
) -> list[str]:
    """Run `doit` until one of its Python processes opens a file of `stage`'s unfinished output
    for writing, and SIGKILL its whole process group then (tests/kill_switch). Returns the
    stages it started. Fails the scenario if the build ended otherwise. `tmpdir`: the build's
    TMPDIR (the system's temp folder as the build sees it)."""
    patterns = unfinished_output_patterns(pipeline.artifacts, stage)
    search_path = [str(KILL_SWITCH), os.environ.get("PYTHONPATH")]
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, search_path)),
        "SANET_TEST_KILL_ON_WRITE": json.dumps(patterns),
        **({"TMPDIR": str(tmpdir)} if tmpdir else {}),
    }
    command, environment = doit_command(pipeline.config_path, env=env)
    # Buffered, as doit writes into a CI log: the stage names reach the pipe before the kill
    # only because the reporter flushes each as its stage starts (tasks/progress.py).
    environment.pop("PYTHONUNBUFFERED", None)
    process = subprocess.Popen(
        command,
        cwd=copy,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the kill takes doit's group, and only it
    )
    try:
        stdout, stderr = process.communicate(timeout=DOIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        expect(False, f"the build meant to be killed inside {stage} ran {DOIT_TIMEOUT_S} s")
    # The group's leader is gone; a child of it (node, say) may still be there.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    started = executed_in(stdout)
    expect(
        process.returncode == -signal.SIGKILL,
        f"the build meant to be killed inside {stage} ended with {process.returncode} "
        f"(stages started: {started}): {stderr[-1500:]}",
    )
    expect(started[-1:] == [stage], f"killed while writing {stage}'s output, but the last "
           f"stage started was {started[-1:]}")  # fmt: skip
    return started


def _killed_inside_every_stage(scratch: Path) -> int:
    expected = reference_build().sums
    copy, pipeline = tiny_repo(scratch / "killed")
    killed = None
    # One build after another, each killed inside the next stage, as it writes its output.
    for stage in ALL_STAGES:
        started = kill_inside(copy, pipeline, stage)
        # Each finished stage was committed: only the stage killed last time may run again.
        rerun = set(started) - {stage, killed}
        expect(not rerun, f"killed in {stage}: finished stages ran again: {sorted(rerun)}")
        killed = stage
    executed = run_doit(copy, pipeline.config_path)
    expect(executed == [killed], f"the build after the kills ran {executed}, not [{killed}]")
    wrong = differences(expected, artifact_sums(pipeline.artifacts))
    expect(not wrong, f"differ from an uninterrupted build: {wrong}")
    expect(not leftovers(pipeline.artifacts), f"left over: {leftovers(pipeline.artifacts)}")
    expect(run_doit(copy, pipeline.config_path) == [], "not up to date after finishing")
    return len(ALL_STAGES)


PROCESS_EXIT_S = 15  # Chromium exits once its driver's pipe closes: give it this long


def processes_naming(path: Path) -> list[str]:
    """The command lines of running processes that name `path` (a build's Chromium, its Node,
    its servers: each is handed a path inside the repository copy)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(path) in text:
                found.append(text[:200])
    return found


def nothing_left_behind(
    copy: Path, pipeline: ScratchPipeline, tmpdir: Path, when: str, killed: bool = False
) -> None:
    """Within PROCESS_EXIT_S: no process of the build runs on (none names the copy or the temp
    folder, a stage's reaper included), the build's TMPDIR is as empty as it was given, and,
    unless it was `killed` (its staged output then waits beside its place for the next build,
    never trusted), artifacts/ holds no partial file."""
    # A killed build's scratch folder is removed by its reaper, which retries for as long as
    # something (Chromium, after the kill, under load) still writes there: wait that long.
    reaping_s = REAPER_TRIES * REAPER_RETRY_S if killed else 0
    deadline = time.monotonic() + PROCESS_EXIT_S + reaping_s
    while time.monotonic() < deadline and (
        processes_naming(copy) or processes_naming(tmpdir) or any(tmpdir.iterdir())
    ):
        time.sleep(0.25)
    survivors = processes_naming(copy) + processes_naming(tmpdir)
    expect(not survivors, f"{when}: processes of the build still run: {survivors}")
    left = sorted(path.name for path in tmpdir.iterdir())
    expect(not left, f"{when}: left in the temp folder: {left}")
    if not killed:
        expect(not leftovers(pipeline.artifacts), f"{when}: left: {leftovers(pipeline.artifacts)}")


def _killed_and_failed_builds_leave_nothing(scratch: Path) -> int:
    copy, pipeline = reference_build().copy_to(scratch / "repo")
    # Short: Chromium's singleton socket goes in TMPDIR, and a socket path has at most 107 bytes.
    tmpdir = Path(tempfile.mkdtemp(prefix="sanet-tmp-"))
    try:
        _leave_nothing_in(copy, pipeline, tmpdir)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return 2


def _leave_nothing_in(copy: Path, pipeline: ScratchPipeline, tmpdir: Path) -> None:
    with_tmpdir = {"TMPDIR": str(tmpdir)}
    # A smoke stage that fails (the page logs an error): Chromium and the site's server were
    # running, its profile in the stage's scratch folder.
    app = copy / "web" / "app.js"
    original = app.read_text()
    app.write_text(original + '\nconsole.error("an error the smoke stage must fail on");\n')
    failed = run_doit_process(copy, pipeline.config_path, env=with_tmpdir)
    printed = failed.stdout + failed.stderr
    expect(failed.returncode != 0 and "smoke test failed" in printed,
           f"the smoke stage was meant to fail: {printed[-800:]}")  # fmt: skip
    nothing_left_behind(copy, pipeline, tmpdir, "after a failed smoke stage")
    # Killed inside the smoke stage, as it writes its report: Chromium still open. The stage's
    # reaper removes its scratch folder.
    app.write_text(original)
    kill_inside(copy, pipeline, "smoke", tmpdir)
    nothing_left_behind(copy, pipeline, tmpdir, "after a build killed inside smoke", killed=True)
    expect(run_doit(copy, pipeline.config_path, env=with_tmpdir) == ["smoke"], "smoke reruns")
    nothing_left_behind(copy, pipeline, tmpdir, "after the next build")


def _tampered_outputs_are_rebuilt(scratch: Path) -> int:
    # The invalidation matrix's tampered rows (tests/test_pipeline.py), one after another.
    from tests.test_pipeline import TAMPERED_ARTIFACT_ROWS, rerun_after_edit

    for index, row in enumerate(TAMPERED_ARTIFACT_ROWS):
        rerun_after_edit(row, reference_build(), scratch / f"tampered{index}")
    return len(TAMPERED_ARTIFACT_ROWS)


def _tampered_rows_in_the_matrix() -> int:
    from tests.test_pipeline import TAMPERED_ARTIFACT_ROWS

    return len(TAMPERED_ARTIFACT_ROWS)


def build_scenarios() -> list[Scenario]:
    return [
        Scenario(
            "interrupted builds",
            "`doit` killed with SIGKILL inside each stage in turn "
            f"({', '.join(ALL_STAGES)}), at its first Python write of unfinished output (a "
            "staged file, a partial download, or its sums file), then run to the end",
            "no stage that had finished runs again (each is committed to doit's database as "
            "it finishes): each build reruns only the stage killed last; the last build runs "
            "only the stage killed; every artifact is byte-identical to an uninterrupted "
            "build's (timing reports aside); no temporary file is left",
            _killed_inside_every_stage,
            slow=True,
        ),
        Scenario(
            "killed and failed builds' leftovers",
            "a smoke stage that fails (Chromium, Playwright's driver and the site's server "
            "running); a build killed with SIGKILL inside the smoke stage, Chromium open",
            "within 15 s, no process of the build runs on and the temp folder it was given "
            "(TMPDIR) is empty again: each stage's temporary files go to a folder of its own, "
            "removed when the stage ends or, after a kill, by the stage's reaper; no partial "
            "file in artifacts/ once the next build ran",
            _killed_and_failed_builds_leave_nothing,
            slow=True,
        ),
        Scenario(
            "tampered artifacts",
            "after a build: a byte flipped in a checkpoint, an ONNX file, a SavedModel, the "
            "TFStyle variables' index, a weight shard; the TFStyle variables truncated; a line "
            "added to a sums file; a site file deleted; a file added to the site (in the suite: "
            "the invalidation matrix's rows, tests/test_pipeline.py)",
            "the stage that wrote it notices (recorded sha256) and rebuilds it; no other stage "
            "reruns (no stage reads a timing); every artifact is byte-identical to "
            "the untampered build's again",
            _tampered_outputs_are_rebuilt,
            slow=True,
            runs_elsewhere=_tampered_rows_in_the_matrix,
        ),
    ]


# --- the remote build cache (a real SeaweedFS on loopback) -----------------------------------

# Each run: `doit report` in a copy of the reference build with the report's outputs deleted
# (the cheapest stage to build: it merges the parity reports), so a run takes a second or two
# and every artifact, not only the stage's, is compared with the clean build's.
CACHE_STAGE = "report"


@functools.cache
def seaweed() -> SeaweedServer:
    """One SeaweedFS server for this process, started on first use, stopped at exit."""
    folder = Path(tempfile.mkdtemp(prefix="sanet-seaweed-"))
    context = seaweed_server(folder)
    server = context.__enter__()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    atexit.register(context.__exit__, None, None, None)
    return server


def reference_entry(stage: str) -> tuple[str, ActionResult]:
    """The reference build's ac/ entry of `stage`: (key, entry)."""
    for path in sorted((reference_build().cache / "ac").iterdir()):
        entry = decode_entry(path.read_bytes())
        if entry.files and all(f.path.split("/")[0] in OUTPUTS[stage].all for f in entry.files):
            return path.name, entry
    raise Wrong(f"the reference build stored no entry for {stage}")


def seeded_prefix(name: str, stage: str = CACHE_STAGE) -> tuple[str, ActionResult, str]:
    """A fresh prefix of the bucket holding the reference's entry of `stage` and its blobs:
    (prefix path in the bucket, the entry, its key)."""
    server = seaweed()
    fs = server.filesystem()
    prefix = f"{BUCKET}/{name}-{os.getpid()}-{time.monotonic_ns()}"
    key, entry = reference_entry(stage)
    for digest in {f.sha256 for f in entry.files}:
        fs.put_file(str(reference_build().cache / "cas" / digest), f"{prefix}/cas/{digest}")
    fs.pipe_file(f"{prefix}/ac/{key}", (reference_build().cache / "ac" / key).read_bytes())
    return prefix, entry, key


def cache_build(
    scratch: Path,
    prefix: str,
    *,
    writer: bool = False,
    endpoint: str | None = None,
    config: dict | None = None,
    extra_env: dict | None = None,
    name: str = "copy",
) -> tuple[subprocess.CompletedProcess, ScratchPipeline]:
    """`doit report` in a copy of the reference build whose report is gone, with the cache
    at s3://`prefix`."""
    copy, pipeline = reference_build().copy_to(scratch / name)
    for output in OUTPUTS[CACHE_STAGE].all:
        (pipeline.artifacts / output).unlink()
    pipeline.config["cache"] = {
        "url": f"s3://{prefix}",
        "write": writer,
        "retries": 0,
        "connect_timeout_s": 2,
        "read_timeout_s": 5,
        **(config or {}),
    }
    pipeline.save()  # (no stage reads the cache section: nothing else reruns)
    env = {**seaweed().env(writer=writer, endpoint=endpoint), **(extra_env or {})}
    command, environment = doit_command(pipeline.config_path, CACHE_STAGE, env=env)
    result = subprocess.run(command, cwd=copy, env=environment, capture_output=True, text=True,
                            timeout=DOIT_TIMEOUT_S)  # fmt: skip
    return result, pipeline


def built_as_clean(result: subprocess.CompletedProcess, pipeline: ScratchPipeline) -> None:
    """The build succeeded, ran no other stage, and every artifact is the reference build's."""
    expect(result.returncode == 0, f"the build failed: {result.stderr[-1500:]}")
    expect(executed_in(result.stdout) == [CACHE_STAGE], f"ran {executed_in(result.stdout)}")
    ours, clean = artifact_sums(pipeline.artifacts), reference_build().sums
    differ = sorted(name for name in {*ours, *clean} if ours.get(name) != clean.get(name))
    expect(not differ, f"differ from a clean build's: {differ}")
    expect(not leftovers(pipeline.artifacts), f"left: {leftovers(pipeline.artifacts)}")


def built_locally(result: subprocess.CompletedProcess, words: str) -> None:
    expect(f"{CACHE_STAGE} done in" in result.stdout, "the stage was not built locally")
    expect(words in result.stderr, f"no line saying {words!r}: {result.stderr[-1500:]}")


def _tampered_blob(change: Callable[[bytes], bytes], words: str) -> Callable[[Path], int]:
    def run(scratch: Path) -> int:
        prefix, entry, _ = seeded_prefix("blob")
        fs = seaweed().filesystem()
        blob = f"{prefix}/cas/{max(entry.files, key=lambda f: f.size).sha256}"
        fs.pipe_file(blob, change(fs.cat_file(blob)))
        result, pipeline = cache_build(scratch, prefix)
        built_as_clean(result, pipeline)
        built_locally(result, words)
        return 1

    return run


def _flip(data: bytes) -> bytes:
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 1
    return bytes(flipped)


def _rewritten_entry(change: Callable[[str, ActionResult, str], ActionResult], words: str):
    def run(scratch: Path) -> int:
        prefix, entry, key = seeded_prefix("entry")
        seaweed().filesystem().pipe_file(
            f"{prefix}/ac/{key}", encode_entry(change(prefix, entry, key))
        )
        result, pipeline = cache_build(scratch, prefix)
        built_as_clean(result, pipeline)
        built_locally(result, words)
        return 1

    return run


def _wrong_digest(prefix: str, entry: ActionResult, _key: str) -> ActionResult:
    # The entry names, for its largest file, the digest of other bytes; the blob at that
    # address holds the file's real bytes (so size and address agree, the content does not).
    target = max(entry.files, key=lambda f: f.size)
    fake = hashlib.sha256(b"not these bytes").hexdigest()
    fs = seaweed().filesystem()
    fs.pipe_file(f"{prefix}/cas/{fake}", fs.cat_file(f"{prefix}/cas/{target.sha256}"))
    files = tuple(CacheFile(f.path, fake, f.size) if f == target else f for f in entry.files)
    return ActionResult(files, entry.values)


def _missing_blob(prefix: str, entry: ActionResult, _key: str) -> ActionResult:
    seaweed().filesystem().rm_file(f"{prefix}/cas/{entry.files[0].sha256}")
    return entry


def _signing_refused(scratch: Path) -> int:
    from sanet_tfjs.cache.__main__ import keygen

    public, _ = keygen()
    _, other_secret = keygen()
    runs = 0
    for signed_by, words in ((None, "is not signed"), (other_secret, "signature does not match")):
        prefix, entry, key = seeded_prefix("signed")
        if signed_by is not None:
            signer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(signed_by))
            entry = ActionResult(entry.files, entry.values, signer.sign(entry.signed_payload(key)))
        seaweed().filesystem().pipe_file(f"{prefix}/ac/{key}", encode_entry(entry))
        result, pipeline = cache_build(
            scratch, prefix, config={"public_key": public}, name=f"copy{runs}"
        )
        built_as_clean(result, pipeline)
        built_locally(result, words)
        runs += 1
    return runs


def _server_down(scratch: Path) -> int:
    closed = free_ports(1)[0]  # nothing listens there
    started = time.monotonic()
    result, pipeline = cache_build(scratch, f"{BUCKET}/down", endpoint=f"http://127.0.0.1:{closed}")
    built_as_clean(result, pipeline)
    built_locally(result, "cache error")
    expect(time.monotonic() - started < 60, "the unreachable server held the build up")
    return 1


def _server_stops_mid_download(scratch: Path) -> int:
    prefix, _, _ = seeded_prefix("cut")
    with cutting_proxy(seaweed().s3_port) as port:
        result, pipeline = cache_build(scratch, prefix, endpoint=f"http://127.0.0.1:{port}")
    built_as_clean(result, pipeline)
    built_locally(result, "cache error while downloading")
    return 1


def _read_only_writes_nothing(scratch: Path) -> int:
    fs = seaweed().filesystem()
    before = sorted(fs.find(BUCKET))
    prefix = f"{BUCKET}/readonly-{os.getpid()}"
    result, pipeline = cache_build(scratch, prefix, extra_env={"SANET_CACHE_WRITE": "1"})
    built_as_clean(result, pipeline)
    built_locally(result, "refused the write")
    expect(sorted(seaweed().filesystem().find(BUCKET)) == before, "the bucket changed")
    return 1


def _two_writers(scratch: Path) -> int:
    seaweed()  # started here, not in a pool thread: the server stops when its starter ends
    prefix = f"{BUCKET}/writers-{os.getpid()}-{time.monotonic_ns()}"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(cache_build, scratch, prefix, writer=True, name=f"writer{i}")
            for i in range(2)
        ]
        results = [run.result() for run in runs]
    for result, pipeline in results:
        built_as_clean(result, pipeline)
    entries = seaweed().filesystem().find(f"{prefix}/ac")
    expect(len(entries) == 1, f"{len(entries)} ac/ entries for one key")
    # One stored it; the other was told it came second, or (started later) fetched it.
    said = [
        [words for words in ("uploaded to", "already in", "fetched from") if words in r.stderr]
        for r, _ in results
    ]
    expect(sorted(said) in ([["already in"], ["uploaded to"]], [["fetched from"], ["uploaded to"]]),
           f"not one entry kept and the other build told: {said}")  # fmt: skip
    # The store's conditional create itself, raced on one name: exactly one wins.
    store = S3Store(lambda _: seaweed().filesystem(), prefix)  # the writer's keys, in-process
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        won = list(pool.map(lambda i: store.create("ac/raced", b"%d" % i), range(4)))
    expect(won.count(True) == 1, f"{won.count(True)} of 4 racing creates won")
    # and a third build fetches what they stored
    result, pipeline = cache_build(scratch, prefix, name="reader")
    built_as_clean(result, pipeline)
    expect("fetched from the cache" in result.stderr, "the stored entry was not used")
    return 4


def cache_scenarios() -> list[Scenario]:
    designed = (
        "the build succeeds, the stage's files equal a clean build's (sha256), one line says "
        "what happened"
    )
    area = "remote build cache"
    return [
        Scenario(area, "a blob in cas/ truncated to half",
                 f"{designed}; the entry is ignored and the stage built locally",
                 _tampered_blob(lambda b: b[: len(b) // 2], "bytes, the entry says"), slow=True),
        Scenario(area, "one byte flipped in a blob in cas/",
                 f"{designed}; the entry is ignored and the stage built locally",
                 _tampered_blob(_flip, "does not have the sha256"), slow=True),
        Scenario(area, "an ac/ entry naming a wrong digest (the blob at that address: other bytes)",
                 f"{designed}; the entry is ignored and the stage built locally",
                 _rewritten_entry(_wrong_digest, "does not have the sha256"), slow=True),
        Scenario(area, "an ac/ entry naming a blob missing from cas/",
                 f"{designed}; the stage built locally",
                 _rewritten_entry(_missing_blob, "is missing from the cache"), slow=True),
        Scenario(area, "signing on (cache.public_key): an unsigned entry; one signed by other keys",
                 f"{designed}; the entry is ignored and the stage built locally",
                 _signing_refused, slow=True),
        Scenario(area, "the server down from the start (nothing listening)",
                 f"{designed}; the stage built locally, the server not asked again",
                 _server_down, slow=True),
        Scenario(area, "the server hanging up in the middle of a blob's download (a proxy cuts it)",
                 f"{designed}; nothing from the partial download is kept, the stage built locally",
                 _server_stops_mid_download, slow=True),
        Scenario(area, "read-only credentials with cache.write on",
                 f"{designed}; the upload refused, the bucket unchanged",
                 _read_only_writes_nothing, slow=True),
        Scenario(area, "two builds writing one key at once, a third reading it; 4 racing creates",
                 f"{designed}; one ac/ entry kept (a conditional PUT), the third build fetches it; "
                 "one create wins",
                 _two_writers, slow=True),
    ]  # fmt: skip


# --- the table --------------------------------------------------------------------------------


def all_scenarios() -> list[Scenario]:
    return (
        network_scenarios()
        + checkpoint_scenarios()
        + config_scenarios()
        + build_scenarios()
        + cache_scenarios()
    )


def run_scenario(scenario: Scenario, scratch: Path) -> tuple[int, str]:
    """(runs, result): result is "as designed" or what went wrong."""
    try:
        return scenario.run(scratch), "as designed"
    except AssertionError as exc:  # Wrong, or a failed build in a helper
        return 0, f"WRONG: {exc}"


WRITE_COMMAND = "PYTHONPATH=src .venv/bin/python -m tests.hardening --write"


def written_on(table: str) -> str:
    """The day a rendered table was written (its source line says it)."""
    found = re.search(r"^_From `[^`]+` on (\d{4}-\d{2}-\d{2})", table, re.M)
    return found.group(1) if found else ""


def render_table(rows: list[tuple[Scenario, int, str]], day: str) -> str:
    lines = [
        "# Hardening: faults and bad inputs tried",
        "",
        "`tests/test_hardening.py` checks that this file is what the scenarios of "
        "tests/hardening.py produce. Each run also checks that no partial or unverified file "
        "is left at a final path.",
        "",
        f"_From `{WRITE_COMMAND}` on {day}._",
        "",
        "| area | fault or input | runs | designed outcome | result |",
        "| --- | --- | --- | --- | --- |",
    ]
    for scenario, runs, result in rows:
        cells = [scenario.area, scenario.fault, str(runs), scenario.designed, result]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    total = sum(runs for _, runs, _ in rows)
    lines += ["", f"{len(rows)} scenarios, {total} runs.", ""]
    return "\n".join(lines)


def scenario_ids(scenarios: list[Scenario]) -> list[str]:
    """Short test ids: the area's first word and the scenario's number within its area."""
    ids, counts = [], {}
    for scenario in scenarios:
        area = scenario.area.split()[0].replace(".", "-")
        counts[area] = counts.get(area, 0) + 1
        ids.append(f"{area}-{counts[area]}")
    return ids


def runs_in_table(table: str) -> dict[tuple[str, str], int]:
    """{(area, fault): runs} of the rows of a rendered table."""
    rows = {}
    for line in table.splitlines()[8:]:
        if not line.startswith("| "):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        rows[(cells[0], cells[1])] = int(cells[2])
    return rows


def run_all() -> list[tuple[Scenario, int, str]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="sanet-hardening-") as scratch:
        for index, scenario in enumerate(all_scenarios()):
            folder = Path(scratch) / f"s{index}"
            folder.mkdir()
            rows.append((scenario, *run_scenario(scenario, folder)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="run the hardening scenarios")
    parser.add_argument("--write", action="store_true", help=f"write {TABLE_PATH}")
    table = render_table(run_all(), datetime.datetime.now(datetime.UTC).date().isoformat())
    if parser.parse_args().write:
        TABLE_PATH.parent.mkdir(exist_ok=True)
        TABLE_PATH.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
