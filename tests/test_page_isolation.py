"""The page's service worker in real headless Chromium: cross-origin isolation, wasm threads,
and offline use.

Its own module: each test starts a browser with its own server (no COOP/COEP headers: a plain
static host), and Playwright's sync API allows one browser driver per thread at a time, so
these cannot run while test_page's module-wide browser is open.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from sanet_tfjs.errors import PipelineError
from sanet_tfjs.repo import ROOT
from sanet_tfjs.runtimes.browser import StylePage, chromium
from sanet_tfjs.server import serve_directory
from sanet_tfjs.site import SERVICE_WORKER, VENDOR_FILES, WASM_GLUE, size_wasm_worker_pool
from sanet_tfjs.stages.page import run_page_stage
from tests.test_page import TWO_LEVELS, matches_pytorch, stylize_example


def build_files(site) -> dict:
    return json.loads((site / "build.json").read_text())["files"]


def page_stage_version(site) -> str:
    """The build version the page stage wrote into the service worker."""
    text = (site / SERVICE_WORKER).read_text()
    return json.loads(text.split("const MANIFEST = ", 1)[1].split(";\n", 1)[0])["version"]


def isolation_and_threads(page: StylePage) -> list:
    """[isolated, threads]; checks that the threaded wasm backend (isolated pages) started only
    the workers its threads run (one at least: site.py size_wasm_worker_pool), not tfjs's 8."""
    isolated, threads, workers = page.page.evaluate(
        """(() => {
            const pool = tf.backend().wasm.PThread;
            const workers = pool ? pool.unusedWorkers.length + pool.runningWorkers.length : null;
            return [crossOriginIsolated, tf.wasm.getThreadsCount(), workers];
        })()"""
    )
    assert workers == (max(1, threads - 1) if isolated else None), (isolated, threads, workers)
    return [isolated, threads]


def test_wasm_worker_pool_is_sized_by_the_page_or_the_build_stops():
    source = next(path for path, name in VENDOR_FILES.items() if name == WASM_GLUE)
    glue = (ROOT / "node_modules" / source).read_text(encoding="utf-8")
    sized = size_wasm_worker_pool(glue)
    assert len(sized) - len(glue) == len("(globalThis.sanetWasmWorkers??8)") - 1
    with pytest.raises(PipelineError, match=r"update site\.py WASM_WORKER_POOL"):
        size_wasm_worker_pool(sized)  # a glue without tfjs 4.22's pool start


def test_plain_static_host_isolates_itself_and_runs_two_threads(tiny_site, tiny_model):
    """A host that sends no COOP/COEP (GitHub Pages): the service worker isolates the page, so
    with 4 cores reported tfjs runs its threaded binary on 2 threads (cores / 2). The user's
    thread choice is remembered across visits and gives the same pixels."""
    with serve_directory(tiny_site) as server, chromium() as context:
        page = StylePage(context, f"{server.url}/?backend=wasm&expose=1&bundle=exact", cores=4)
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert isolation_and_threads(page) == [True, 2]
        assert page.runtime() == (
            "Backend: wasm, 2 threads (cross-origin isolated by its service worker)."
        )
        assert page.page.input_value("#threads") == "auto"
        two_threads = stylize_example(page, tiny_site, 128)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS

        page.page.select_option("#threads", "1")  # reloads the page
        page.page.wait_for_function(
            "document.querySelector('#runtime').textContent.includes('1 thread')"
        )
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert isolation_and_threads(page) == [True, 1]
        one_thread = stylize_example(page, tiny_site, 128)
        assert np.abs(two_threads - one_thread).max() <= 1 / 255

        again = StylePage(context, f"{server.url}/?backend=wasm", cores=4)  # a later visit
        assert again.wait_for_phase("ready") == "ready", again.status()
        assert again.page.input_value("#threads") == "1"
        assert isolation_and_threads(again) == [True, 1]
        # a saved count this machine cannot have (saved on a larger one) falls back to auto
        again.page.evaluate("localStorage.setItem('sanet.threads', '99')")
        third = StylePage(context, f"{server.url}/?backend=wasm", cores=4)
        assert third.wait_for_phase("ready") == "ready", third.status()
        assert third.page.input_value("#threads") == "auto"
        assert isolation_and_threads(third) == [True, 2]
        for opened in (page, again, third):
            assert opened.problems.console_errors == [] and opened.problems.failed_requests == []


def test_page_that_cannot_be_isolated_still_works_on_one_thread(tiny_site, tiny_model):
    with serve_directory(tiny_site) as server, chromium(service_workers="block") as context:
        page = StylePage(context, f"{server.url}/?backend=wasm&expose=1&bundle=exact", cores=4)
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert isolation_and_threads(page) == [False, 1]
        assert "1 thread (not cross-origin isolated, so one thread:" in page.runtime()
        stylize_example(page, tiny_site, 96)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS
        assert page.problems.console_errors == [] and page.problems.failed_requests == []


def cached_bundles(page: StylePage) -> set[str]:
    """The bundle folders the service worker's cache holds files of."""
    paths = page.page.evaluate(
        """async () => {
            const cache = await caches.open((await caches.keys())[0]);
            return (await cache.keys()).map((request) => new URL(request.url).pathname);
        }"""
    )
    return {path.split("/")[-2] for path in paths if "/model" in path}


def test_after_one_visit_the_page_stylizes_with_the_network_off(tiny_site, tiny_model):
    """One visit to a plain static host saves the page, TensorFlow.js and the model it loaded
    (the small bundle, the default) on the device, each file checked against the build's sums.
    "exact" chosen by hand: the cache keeps the exact bundle instead. With the host gone and
    the browser offline, a reload starts, says it runs offline, and stylizes PyTorch's pixels."""
    files = build_files(tiny_site)
    page_files = [path for path in files if not path.startswith("model")]
    with chromium() as context:
        with serve_directory(tiny_site) as server:
            page = StylePage(context, f"{server.url}/?backend=wasm&expose=1", cores=4)
            assert page.wait_for_phase("ready") == "ready", page.status()
            assert page.offline() == (
                "Saved on this device: the page and its model work offline from now on."
            )
            small = [path for path in files if path.startswith("model-small/")]
            saved = page.stats()["offline"]
            assert saved["cached"] == saved["files"] == len(page_files) + len(small) + 1
            assert cached_bundles(page) == {"model-small"}
            page.page.select_option("#bundle", "exact")  # reloads the page
            page.page.wait_for_function(
                "window.sanet && window.sanet.phase === 'ready' &&"
                " window.sanet.stats.bundle.name === 'exact'"
            )
            exact = [path for path in files if path.startswith("model/")]
            saved = page.stats()["offline"]
            assert saved["cached"] == saved["files"] == len(page_files) + len(exact) + 1
            assert cached_bundles(page) == {"model"}
            assert page.problems.console_errors == [] and page.problems.failed_requests == []
        context.set_offline(True)
        try:
            page.page.reload()
            assert page.wait_for_phase("ready") == "ready", page.status()
            assert page.offline() == "Offline: running from the copy saved on this device."
            assert page.stats()["bundle"]["name"] == "exact"
            assert isolation_and_threads(page) == [True, 2]  # the worker's headers, from cache
            stylize_example(page, tiny_site, 96)
            assert matches_pytorch(page, tiny_model) <= TWO_LEVELS
            assert page.problems.console_errors == [] and page.problems.failed_requests == []
        finally:
            context.set_offline(False)


def test_a_new_build_replaces_the_saved_one(tiny_site, tiny_build, tmp_path):
    """The host is updated to a build with other weights: the next visit installs the new
    build's worker, which keeps the new model and deletes the old build's cache."""
    model = tmp_path / "model"
    shutil.copytree(tiny_build / "tfjs", model)
    (shard,) = model.glob("*.bin")
    weights = np.frombuffer(shard.read_bytes(), np.uint8).copy()
    spans, offset = [], 0  # every weight of the tiny model is 4 bytes: float32 or int32
    for entry in json.loads((model / "model.json").read_text())["weightsManifest"][0]["weights"]:
        size = 4 * int(np.prod(entry["shape"]))
        spans.append((size, offset, entry["dtype"]))
        offset += size
    size, offset, _ = max(span for span in spans if span[2] == "float32")  # a filter, scaled
    weights[offset : offset + size].view(np.float32)[:] *= np.float32(1.01)
    shard.write_bytes(weights.tobytes())
    new_site = tmp_path / "site"
    run_page_stage("web", str(model), str(new_site), "fixture")
    new_version = page_stage_version(new_site)
    assert new_version != page_stage_version(tiny_site)

    with serve_directory(tiny_site) as server, chromium() as context:
        page = StylePage(context, f"{server.url}/?backend=wasm")
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert page.stats()["offline"]["version"] == page_stage_version(tiny_site)
        server.directory = new_site  # the host is updated
        page.page.reload()  # the browser looks for a new worker; the old one answers meanwhile
        new_build_ready = (
            "v => window.sanet.phase === 'ready' && window.sanet.stats.offline.version === v"
        )
        page.page.wait_for_function(
            f"v => ({new_build_ready})(v) || document.querySelector('#offline').textContent"
            ".startsWith('A new version of this page is ready')",
            arg=new_version,
        )
        if page.stats()["offline"]["version"] != new_version:  # it took over once ready
            page.page.reload()
        page.page.wait_for_function(new_build_ready, arg=new_version)
        assert page.offline().startswith("Saved on this device")
        assert page.page.evaluate("caches.keys()") == [f"sanet-{new_version}"]
        served = page.page.evaluate(
            """async (path) => {
                const bytes = await (await fetch(path)).arrayBuffer();
                const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
                return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
            }""",
            f"model/{shard.name}",
        )
        assert served == build_files(new_site)[f"model/{shard.name}"]
        assert page.problems.console_errors == [] and page.problems.failed_requests == []
