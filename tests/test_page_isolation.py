"""Cross-origin isolation and wasm threads of the web page, in real headless Chromium.

Its own module: each test starts a browser with its own server (no COOP/COEP headers: a plain
static host), and Playwright's sync API allows one browser driver per thread at a time, so
these cannot run while test_page's module-wide browser is open.
"""

from __future__ import annotations

import numpy as np

from sanet_tfjs.browser import StylePage, chromium
from sanet_tfjs.server import serve_directory
from tests.test_page import TWO_LEVELS, matches_pytorch, stylize_example


def isolation_and_threads(page: StylePage) -> list:
    return page.page.evaluate("[crossOriginIsolated, tf.wasm.getThreadsCount()]")


def test_plain_static_host_isolates_itself_and_runs_two_threads(tiny_site, tiny_model):
    """A host that sends no COOP/COEP (GitHub Pages): the service worker isolates the page, so
    with 4 cores reported tfjs runs its threaded binary on 2 threads (cores / 2). The user's
    thread choice is remembered across visits and gives the same pixels."""
    with serve_directory(tiny_site) as server, chromium() as context:
        page = StylePage(context, f"{server.url}/?backend=wasm&expose=1", cores=4)
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
        page = StylePage(context, f"{server.url}/?backend=wasm&expose=1", cores=4)
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert isolation_and_threads(page) == [False, 1]
        assert "1 thread (not cross-origin isolated, so one thread:" in page.runtime()
        stylize_example(page, tiny_site, 96)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS
        assert page.problems.console_errors == [] and page.problems.failed_requests == []
