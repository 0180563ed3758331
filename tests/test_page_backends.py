"""The page's backends in real headless Chromium: what `auto` picks on browsers with and
without WebGPU and WebGL, and each one's pixels against PyTorch.

Its own module for the reason test_page_isolation gives: each test starts its own browser.
"""

from __future__ import annotations

import pytest

from sanet_tfjs.runtimes.browser import NO_GPU_FLAGS, WEBGPU_SOFTWARE_FLAGS, StylePage, chromium
from sanet_tfjs.server import serve_directory
from tests.test_page import TWO_LEVELS, matches_pytorch, stylize_example


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (WEBGPU_SOFTWARE_FLAGS, "webgpu"),  # a WebGPU adapter (SwiftShader's)
        ((), "webgl"),  # no WebGPU adapter (the GPU process is off), WebGL in software
        (NO_GPU_FLAGS, "wasm"),  # neither
    ],
    ids=["webgpu-adapter", "no-webgpu", "no-gpu-apis"],
)
def test_auto_takes_the_fastest_backend_offered(tiny_site, tiny_model, flags, expected):
    with (
        serve_directory(tiny_site, isolation_headers=True) as server,
        chromium(flags=flags) as context,
    ):
        page = StylePage(context, f"{server.url}/?expose=1")
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert page.stats()["backend"] == expected
        assert page.runtime().startswith(f"Backend: {expected}")
        stylize_example(page, tiny_site, 96)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS
        assert page.problems.console_errors == [] and page.problems.failed_requests == []


def test_webgpu_asked_for_without_an_adapter_gets_a_clear_message(tiny_site):
    with serve_directory(tiny_site, isolation_headers=True) as server, chromium() as context:
        page = StylePage(context, f"{server.url}/?backend=webgpu")
        assert page.wait_for_phase("ready") == "error"
        assert page.status() == (
            "The webgpu backend is not available in this browser: choose another backend."
        )
        assert page.page.is_disabled("#stylize")
