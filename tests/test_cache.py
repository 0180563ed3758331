"""The remote build cache (src/sanet_tfjs/cache/): its ac/ encoding, its keys, its checks, and
builds against a real SeaweedFS. The faults (tampered blobs and entries, signatures, a server
down or hanging up, read-only credentials, two writers) are tests/hardening.py's scenarios."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from sanet_tfjs.cache import stage as cache_stage
from sanet_tfjs.cache.actionresult import (
    ActionResult,
    MalformedEntry,
    OutputFile,
    decode,
    encode,
)
from sanet_tfjs.cache.key import ActionInputs, Places, action_key
from sanet_tfjs.cache.stage import CacheSettings, StageCache
from sanet_tfjs.cache.store import StoreSettings
from sanet_tfjs.files import sha256_file
from sanet_tfjs.server import RangeFileHandler, serve_directory
from tests.conftest import artifact_sums, executed_in, run_doit_process, tiny_repo
from tests.seaweed import BUCKET, free_ports

DIGEST = "ab" * 32
ENTRY = ActionResult(
    (OutputFile("tfjs/model.json", DIGEST, 1234), OutputFile("tfjs_parity.json", "cd" * 32, 0)),
    {"passed": True, "sizes": [1, 2]},
)


def reapi_action_result_class() -> type:
    """ActionResult, OutputFile, Digest and ExecutedActionMetadata as remote_execution.proto
    numbers them (the fields this pipeline uses), built with the protobuf library."""
    proto = descriptor_pb2.FileDescriptorProto(name="reapi_subset.proto", package="reapi")
    string, int64, message = (
        descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
        descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
        descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
    )
    bytes_type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    repeated = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    optional = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL

    def add(name: str, *fields: tuple) -> None:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            msg.field.add(name=field_name, number=number, type=kind, label=label,
                          type_name=type_name or None)  # fmt: skip

    add("Digest", ("hash", 1, string, optional, ""), ("size_bytes", 2, int64, optional, ""))
    add("Any", ("type_url", 1, string, optional, ""), ("value", 2, bytes_type, optional, ""))
    add("OutputFile", ("path", 1, string, optional, ""),
        ("digest", 2, message, optional, ".reapi.Digest"))  # fmt: skip
    add("ExecutedActionMetadata", ("worker", 1, string, optional, ""),
        ("auxiliary_metadata", 11, message, repeated, ".reapi.Any"))  # fmt: skip
    add("ActionResult", ("output_files", 2, message, repeated, ".reapi.OutputFile"),
        ("exit_code", 4, descriptor_pb2.FieldDescriptorProto.TYPE_INT32, optional, ""),
        ("execution_metadata", 9, message, optional, ".reapi.ExecutedActionMetadata"))  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("reapi.ActionResult"))


def test_an_entry_is_a_reapi_action_result_that_protobuf_reads():
    parsed = reapi_action_result_class().FromString(encode(ENTRY))
    assert [(f.path, f.digest.hash, f.digest.size_bytes) for f in parsed.output_files] == [
        ("tfjs/model.json", DIGEST, 1234),
        ("tfjs_parity.json", "cd" * 32, 0),
    ]
    assert parsed.exit_code == 0
    [values] = parsed.execution_metadata.auxiliary_metadata
    assert json.loads(values.value) == ENTRY.values
    # and what protobuf writes (field order its own), this module reads back
    assert decode(parsed.SerializeToString()) == ENTRY


def test_an_entry_round_trips_with_its_signature_and_skips_unknown_fields():
    signed = ActionResult(ENTRY.files, ENTRY.values, b"\x01" * 64)
    data = encode(signed)
    assert decode(data) == signed
    unknown = b"\x38\x05" + b"\x52\x03abc"  # field 7 varint, field 10 bytes: not ours
    assert decode(unknown + data) == signed
    for bad in (data[: len(data) // 2], b"\xff" * 12, encode(ENTRY)[:-3]):
        with pytest.raises(MalformedEntry):
            decode(bad)


def _clone(folder: Path, code: str = "x = 1\n") -> Places:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "stage.py").write_text(code)
    (folder / "artifacts" / "sums").mkdir(parents=True)
    (folder / "artifacts" / "sums" / "patch.sha256").write_text("00  patched/a.pt\n")
    return Places(folder, folder / "artifacts", folder)


def _inputs(**watched: object) -> ActionInputs:
    arguments = {"out_dir": "artifacts/onnx", "opset": 10, **watched}
    return ActionInputs(
        "onnx",
        {"run": "stages.onnx:run", "arguments": arguments, "toolchain": {"onnx": "1.22.0"}},
        ("artifacts/sums/patch.sha256", "src/stage.py"),
    )


def test_the_key_is_the_same_in_clones_at_other_paths_and_changes_with_any_input(tmp_path):
    first, second = _clone(tmp_path / "a"), _clone(tmp_path / "deeper" / "b")
    key = action_key(_inputs(), first, sha256_file)
    assert key == action_key(_inputs(), second, sha256_file)
    assert key != action_key(_inputs(opset=11), first, sha256_file)  # a watched setting
    assert key != action_key(_inputs(), _clone(tmp_path / "c", "x = 2\n"), sha256_file)  # code
    (second.artifacts / "sums" / "patch.sha256").write_text("11  patched/a.pt\n")  # an input
    assert key != action_key(_inputs(), second, sha256_file)
    other_stage = ActionInputs("tf", _inputs().watched, _inputs().file_dep)
    assert key != action_key(other_stage, first, sha256_file)


def _stage_cache(places: Places, url: str, *, write: bool) -> StageCache:
    settings = CacheSettings(StoreSettings(url), write=write)
    return StageCache(
        settings, "onnx", _inputs(), places, ("onnx", "onnx_parity.json"), sha256_file
    )


@pytest.fixture(autouse=True)
def fresh_run_record(monkeypatch):
    """Each test its own record of what the cache did (one doit run's, in the wrapper)."""
    monkeypatch.setattr(cache_stage, "RUN", cache_stage.RunRecord())


class BazelHttpCacheHandler(RangeFileHandler):
    """The project's loopback file server plus PUT: a minimal Bazel HTTP cache (GET and PUT
    of /ac/<key> and /cas/<sha256> over a folder), as nginx with WebDAV PUT serves one."""

    def do_PUT(self) -> None:  # noqa: N802 - the stdlib's naming
        path = self.server.directory / self.path.lstrip("/")
        if ".." in Path(self.path).parts:
            self.send_error(400)
            return
        if self.headers["Content-Length"] is None:
            self.send_error(411)  # as bazel-remote: a body of known length
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def cache_url(kind: str, folder: Path) -> Iterator[str]:
    folder.mkdir()
    if kind == "file":
        yield folder.as_uri()
    else:
        with serve_directory(folder, BazelHttpCacheHandler) as server:
            yield server.url


@pytest.mark.parametrize("kind", ["file", "http"])
def test_a_stage_round_trips_through_a_store_and_bad_entries_are_refused(tmp_path, kind):
    with cache_url(kind, tmp_path / "store") as url:
        _round_trip_and_refusals(tmp_path, url)


def _round_trip_and_refusals(tmp_path: Path, store: str) -> None:
    built = _clone(tmp_path / "built")
    (built.artifacts / "onnx").mkdir()
    (built.artifacts / "onnx" / "encoder.onnx").write_bytes(os.urandom(5000))
    shutil.copy(built.artifacts / "onnx" / "encoder.onnx", built.artifacts / "onnx" / "same.onnx")
    (built.artifacts / "onnx" / "empty.txt").write_bytes(b"")
    (built.artifacts / "onnx_parity.json").write_text("{}")
    writer = _stage_cache(built, store, write=True)
    assert writer.fetch() is None  # a miss
    files = [
        "artifacts/onnx/empty.txt",
        "artifacts/onnx/encoder.onnx",
        "artifacts/onnx/same.onnx",  # the same bytes: one blob, two files
        "artifacts/onnx_parity.json",
    ]
    writer.upload(files, {"passed": True})

    clone = _clone(tmp_path / "clone")
    (clone.artifacts / "onnx").mkdir()
    (clone.artifacts / "onnx" / "stale.onnx").write_text("an old build's file")
    assert _stage_cache(clone, store, write=False).fetch() == {"passed": True}
    assert artifact_sums(clone.artifacts) == artifact_sums(built.artifacts)  # stale one gone

    key = writer.key
    entry_path = tmp_path / "store" / "ac" / key
    good = decode(entry_path.read_bytes())
    for files_named in (
        (*good.files, OutputFile("../outside", DIGEST, 1)),  # outside artifacts/
        (*good.files, OutputFile("tf/encoder", DIGEST, 1)),  # not this stage's output
        good.files[:-1],  # an output left out
    ):
        entry_path.write_bytes(encode(ActionResult(tuple(files_named), good.values)))
        target = _clone(tmp_path / f"refused{len(list(tmp_path.iterdir()))}")
        assert _stage_cache(target, store, write=False).fetch() is None
        assert not (target.artifacts / "onnx").exists()  # nothing restored
        assert not list(target.root.parent.glob("outside"))


@pytest.fixture(scope="module")
def seaweed():
    from tests.hardening import seaweed as started

    return started()


@pytest.mark.slow  # starts SeaweedFS
def test_reading_needs_no_credentials_and_writing_without_them_changes_nothing(
    seaweed, tmp_path, monkeypatch, capsys
):
    prefix = f"{BUCKET}/anonymous-{os.getpid()}"
    url = f"s3://{prefix}"
    for name, value in seaweed.env(writer=True).items():
        monkeypatch.setenv(name, value)
    built = _clone(tmp_path / "built")
    (built.artifacts / "onnx").mkdir()
    (built.artifacts / "onnx" / "encoder.onnx").write_bytes(os.urandom(3000))
    (built.artifacts / "onnx_parity.json").write_text("{}")
    writer = _stage_cache(built, url, write=True)
    assert writer.fetch() is None
    writer.upload(["artifacts/onnx/encoder.onnx", "artifacts/onnx_parity.json"], {})
    stored = sorted(seaweed.filesystem().find(prefix))
    assert len(stored) == 3  # ac/ and two blobs

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)  # no credentials anywhere (no profile here either)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    clone = _clone(tmp_path / "clone")
    assert _stage_cache(clone, url, write=False).fetch() == {}
    assert artifact_sums(clone.artifacts) == artifact_sums(built.artifacts)

    (clone.artifacts / "onnx" / "encoder.onnx").write_bytes(os.urandom(3000))  # other bytes
    other = _clone(tmp_path / "other")
    (other.artifacts / "onnx").mkdir()
    shutil.copy(clone.artifacts / "onnx" / "encoder.onnx", other.artifacts / "onnx")
    (other.artifacts / "onnx_parity.json").write_text("{}")
    (other.artifacts / "sums" / "patch.sha256").write_text("22  patched/a.pt\n")  # a new key
    anonymous_writer = _stage_cache(other, url, write=True)
    assert anonymous_writer.fetch() is None
    anonymous_writer.upload(["artifacts/onnx/encoder.onnx", "artifacts/onnx_parity.json"], {})
    assert sorted(seaweed.filesystem().find(prefix)) == stored
    assert cache_stage.RUN.stages[-1].outcome == "error"
    assert "onnx: not uploaded: the cache refused the write" in capsys.readouterr().err


def test_a_clone_fetches_every_stage_from_the_bucket_and_then_asks_nothing(
    reference, seaweed, tmp_path
):
    fs = seaweed.filesystem()
    prefix = f"{BUCKET}/clone-{os.getpid()}"
    fs.put(str(reference.cache) + "/", prefix, recursive=True)
    copy, pipeline = tiny_repo(tmp_path / "clone")
    shutil.copy(reference.copy / "checkpoints.lock.json", copy)  # as committed in a clone
    env = {**seaweed.env(writer=False), "SANET_CACHE_URL": f"s3://{prefix}"}

    result = run_doit_process(copy, pipeline.config_path, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(executed_in(result.stdout)) == set(reference.executed)
    assert " done in " not in result.stdout  # no stage's action ran
    for stage in reference.executed:
        assert f"{stage}: fetched from the cache (" in result.stderr, stage
    assert f"cache: {len(reference.executed)} fetched" in result.stdout
    assert artifact_sums(pipeline.artifacts) == reference.sums  # timing reports included

    # Up to date: no stage runs and the cache is not asked (here it could not answer).
    closed = {**env, "AWS_ENDPOINT_URL_S3": f"http://127.0.0.1:{free_ports(1)[0]}"}
    again = run_doit_process(copy, pipeline.config_path, env=closed)
    assert again.returncode == 0 and executed_in(again.stdout) == []
    assert "cache" not in again.stderr + again.stdout

    # The page's own code edited: the page is built here, everything it reads was fetched.
    app = copy / "web" / "app.js"
    app.write_text(app.read_text() + "\n// edited\n")
    page = run_doit_process(copy, pipeline.config_path, "page", env=env)
    assert page.returncode == 0, page.stderr[-3000:]
    assert executed_in(page.stdout) == ["page"]
    assert "page done in" in page.stdout and "page: not in the cache" in page.stderr
