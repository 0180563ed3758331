"""The fetch code against a real HTTP server on 127.0.0.1, with faults injected."""

from __future__ import annotations

import pytest

from sanet_tfjs.architecture import CHECKPOINT_FILES, DECODER_FILE
from sanet_tfjs.fetch.downloaders import NETWORK_CHUNK, FetchSettings
from sanet_tfjs.fetch.fetcher import (
    MIRROR_ENV,
    CheckpointFetcher,
    ChecksumMismatch,
    FetchError,
    Source,
    resolve_mirror,
)
from sanet_tfjs.fetch.lock import ChecksumLock
from sanet_tfjs.files import sha256_file
from sanet_tfjs.fixtures import write_fixture_checkpoints
from sanet_tfjs.stages.fetch import fetch_checkpoints
from tests.conftest import TINY
from tests.loopback import YANDEX_API_PATH, FaultPlan, faulty_server

FILE_PATH = f"/files/{DECODER_FILE}"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder served over loopback: tiny checkpoints under files/, nothing under empty/."""
    root = tmp_path_factory.mktemp("served")
    write_fixture_checkpoints(root / "files", seed=5, width_divisor=TINY)
    (root / "empty").mkdir()
    return root


def fetcher(server_url: str = "", retries: int = 3) -> CheckpointFetcher:
    settings = FetchSettings(
        connect_timeout_s=2,
        read_timeout_s=2,
        retries=retries,
        backoff_s=0.01,
        yandex_api=server_url + YANDEX_API_PATH,
        progress=False,
    )
    return CheckpointFetcher(settings)


def no_leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".part")] == []


def test_happy_path_records_then_enforces_the_lock(served, tmp_path):
    lock = ChecksumLock.read(tmp_path / "lock.json")
    with faulty_server(served, FaultPlan()) as server:
        links = {name: {} for name in CHECKPOINT_FILES}
        mirror = server.url + "/files"
        first = fetch_checkpoints(fetcher(), links, mirror, tmp_path / "ckpt", lock, "k")
        second = fetch_checkpoints(
            fetcher(), links, mirror, tmp_path / "ckpt", ChecksumLock.read(lock.path), "k"
        )
    for name in CHECKPOINT_FILES:
        assert sha256_file(tmp_path / "ckpt" / name) == sha256_file(served / "files" / name)
        assert first[name].downloaded and not second[name].downloaded
        assert ChecksumLock.read(lock.path).expected("k", name) == first[name].sha256
    assert no_leftovers(tmp_path / "ckpt")


def test_resumes_after_a_dropped_connection(served, tmp_path):
    assert (served / "files" / DECODER_FILE).stat().st_size > 3 * NETWORK_CHUNK
    # The client keeps whole network reads: a hang-up after 1.5 reads keeps one read.
    plan = FaultPlan(drops={FILE_PATH: [NETWORK_CHUNK * 3 // 2, NETWORK_CHUNK * 3 // 2]})
    with faulty_server(served, plan) as server:
        result = fetcher().fetch(
            DECODER_FILE, tmp_path / DECODER_FILE, [Source("github", server.url + FILE_PATH)], None
        )
    assert plan.ranges(FILE_PATH) == [
        None,
        f"bytes={NETWORK_CHUNK}-",
        f"bytes={2 * NETWORK_CHUNK}-",
    ]
    assert result.sha256 == sha256_file(served / "files" / DECODER_FILE)
    assert sha256_file(tmp_path / DECODER_FILE) == result.sha256
    assert no_leftovers(tmp_path)


def test_interrupted_fetch_leaves_no_final_file_and_resumes_next_time(served, tmp_path):
    dest = tmp_path / DECODER_FILE
    plan = FaultPlan(drops={FILE_PATH: [NETWORK_CHUNK + 100]})
    with faulty_server(served, plan) as server:
        source = [Source("github", server.url + FILE_PATH)]
        with pytest.raises(FetchError, match="gave up after 1 attempts"):
            fetcher(retries=0).fetch(DECODER_FILE, dest, source, None)
        assert not dest.exists()
        assert [p.stat().st_size for p in tmp_path.glob("*.part")] == [NETWORK_CHUNK]
        fetcher(retries=0).fetch(DECODER_FILE, dest, source, None)
    assert plan.ranges(FILE_PATH) == [None, f"bytes={NETWORK_CHUNK}-"]
    assert sha256_file(dest) == sha256_file(served / "files" / DECODER_FILE)


def test_server_errors_are_retried(served, tmp_path):
    plan = FaultPlan(statuses={FILE_PATH: [500, 503]})
    with faulty_server(served, plan) as server:
        result = fetcher().fetch(
            DECODER_FILE, tmp_path / DECODER_FILE, [Source("github", server.url + FILE_PATH)], None
        )
    assert len(plan.ranges(FILE_PATH)) == 3
    assert result.downloaded and (tmp_path / DECODER_FILE).exists()


def test_missing_file_falls_through_to_the_next_source(served, tmp_path):
    plan = FaultPlan()
    with faulty_server(served, plan) as server:
        sources = [
            Source("mirror", server.url + "/empty"),
            Source("github", server.url + FILE_PATH),
        ]
        result = fetcher().fetch(DECODER_FILE, tmp_path / DECODER_FILE, sources, None)
    assert result.source.kind == "github"
    assert plan.ranges(f"/empty/{DECODER_FILE}") == [None]  # a 404 is not retried


def test_checksum_mismatch_stops_and_installs_nothing(served, tmp_path):
    wrong = "0" * 64
    with faulty_server(served, FaultPlan()) as server:
        url = server.url + FILE_PATH
        with pytest.raises(ChecksumMismatch) as error:
            fetcher().fetch(DECODER_FILE, tmp_path / DECODER_FILE, [Source("github", url)], wrong)
    message = str(error.value)
    actual = sha256_file(served / "files" / DECODER_FILE)
    for fragment in (DECODER_FILE, url, wrong, actual):
        assert fragment in message
    assert list(tmp_path.iterdir()) == []


def test_yandex_public_link_is_resolved_through_the_api(served, tmp_path):
    link = "https://yadi.sk/d/example"
    plan = FaultPlan(yandex={link: FILE_PATH})
    with faulty_server(served, plan) as server:
        result = fetcher(server.url).fetch(
            DECODER_FILE, tmp_path / DECODER_FILE, [Source("yandex", link)], None
        )
    assert [path for path, _ in plan.requests] == [YANDEX_API_PATH, FILE_PATH]
    assert result.source.kind == "yandex"
    assert sha256_file(tmp_path / DECODER_FILE) == sha256_file(served / "files" / DECODER_FILE)


def test_directory_mirror(served, tmp_path):
    result = fetcher().fetch(
        DECODER_FILE, tmp_path / DECODER_FILE, [Source("mirror", str(served / "files"))], None
    )
    assert result.sha256 == sha256_file(served / "files" / DECODER_FILE)


def test_every_failure_is_reported_with_what_to_do(served, tmp_path):
    plan = FaultPlan(html={FILE_PATH}, statuses={"/files/other": [503] * 10})
    with faulty_server(served, plan) as server:
        sources = [
            Source("mirror", str(tmp_path / "nowhere")),
            Source("yandex", "https://yadi.sk/d/unknown"),
            Source("github", server.url + FILE_PATH),
            Source("github", server.url + "/files/other"),
        ]
        with pytest.raises(FetchError) as error:
            fetcher(server.url, retries=2).fetch(
                DECODER_FILE, tmp_path / DECODER_FILE, sources, None
            )
    message = str(error.value)
    assert f"could not fetch checkpoint '{DECODER_FILE}'" in message
    assert "does not exist" in message  # the folder mirror
    assert "HTTP 404" in message  # Yandex's API does not know the link
    assert "HTML page" in message
    assert "HTTP 503 (gave up after 3 attempts)" in message
    assert MIRROR_ENV in message and "--mirror" in message
    assert not (tmp_path / DECODER_FILE).exists()


def test_mirror_precedence(monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, "/from/env")
    assert resolve_mirror("/from/yaml", "/from/cli") == "/from/cli"
    assert resolve_mirror("/from/yaml", None) == "/from/env"
    monkeypatch.delenv(MIRROR_ENV)
    assert resolve_mirror("/from/yaml", None) == "/from/yaml"
