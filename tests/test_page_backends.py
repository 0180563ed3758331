"""The page's backends in real headless Chromium: what `auto` picks on browsers with and
without WebGPU and WebGL (headless Chromium here renders both in software, on SwiftShader),
what it measures when more than one candidate remains, a choice by hand, and each backend's
pixels against PyTorch.

Its own module for the reason test_page_isolation gives: each test starts its own browser.
"""

from __future__ import annotations

import pytest

from sanet_tfjs.runtimes.browser import NO_GPU_FLAGS, WEBGPU_SOFTWARE_FLAGS, StylePage, chromium
from sanet_tfjs.server import serve_directory
from tests.test_page import TWO_LEVELS, matches_pytorch

EXACT = "bundle=exact&expose=1"  # the float32 bundle: its pixels are PyTorch's within 2/255


def stylize_chosen(page: StylePage, max_resolution: int) -> None:
    """Stylize what the page has chosen (on a first visit: the examples)."""
    assert page.stylize(1, max_resolution) == "done", page.status()


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        (WEBGPU_SOFTWARE_FLAGS, "webgpu and webgl here are software rendering (SwiftShader)"),
        ((), "webgl here is software rendering (SwiftShader)"),  # no WebGPU adapter
        (NO_GPU_FLAGS, "this browser offers the page neither WebGPU nor WebGL"),
    ],
    ids=["webgpu-adapter", "no-webgpu", "no-gpu-apis"],
)
def test_auto_never_prefers_software_rendering_to_wasm(tiny_site, tiny_model, flags, why):
    """SwiftShader's WebGL and WebGPU run on the CPU, 15 to 55 times slower than wasm at full
    width: auto takes wasm without a trial, and says why on the page."""
    with (
        serve_directory(tiny_site, isolation_headers=True) as server,
        chromium(flags=flags) as context,
    ):
        page = StylePage(context, f"{server.url}/?{EXACT}")
        assert page.wait_for_phase("ready") == "ready", page.status()
        choice = page.stats()["choice"]
        assert (choice["by"], choice["backend"], choice["trials"]) == ("auto", "wasm", [])
        assert page.runtime().startswith("Backend: wasm")
        assert page.choice().startswith("Backend chosen by auto: wasm; ")
        assert why in page.choice(), page.choice()
        stylize_chosen(page, 96)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS
        assert page.problems.console_errors == [] and page.problems.failed_requests == []


def test_auto_times_each_candidate_and_remembers_the_fastest(tiny_site):
    """With software renderers counted as candidates (?measure=all, for diagnosis), auto
    times a small stylization on each, takes the fastest, and says so; the next visit (same
    build, same device) takes it without measuring again."""
    with (
        serve_directory(tiny_site, isolation_headers=True) as server,
        chromium() as context,
    ):
        page = StylePage(context, f"{server.url}/?measure=all&{EXACT}")
        assert page.wait_for_phase("ready") == "ready", page.status()
        choice = page.stats()["choice"]
        trials = {trial["backend"]: trial["ms"] for trial in choice["trials"]}
        assert sorted(trials) == ["wasm", "webgl"] and trials["wasm"] is not None
        fastest = min((ms, name) for name, ms in trials.items() if ms is not None)[1]
        assert choice["backend"] == fastest and choice["remembered"] is False
        assert page.choice().startswith(f"Backend chosen by auto: {fastest}; fastest at 64 px")
        model_fetches = [url for url in page.requested if url.endswith("/model/model.json")]
        assert len(model_fetches) == 1  # fetched once for every trial and the model kept

        again = StylePage(context, f"{server.url}/?measure=all&{EXACT}")
        assert again.wait_for_phase("ready") == "ready", again.status()
        remembered = again.stats()["choice"]
        assert remembered["remembered"] is True and remembered["backend"] == fastest
        assert remembered["trials"] == choice["trials"]
        assert again.choice().endswith("(measured on an earlier visit).")
        for opened in (page, again):
            assert opened.problems.console_errors == [] and opened.problems.failed_requests == []


def test_a_backend_chosen_by_hand_wins_and_is_remembered(tiny_site, tiny_model):
    """auto passes over SwiftShader's WebGPU; the user picks webgpu by hand: the page starts
    again on it (its pixels PyTorch's), and a later visit keeps it; 'auto' gives auto back."""
    with (
        serve_directory(tiny_site, isolation_headers=True) as server,
        chromium(flags=WEBGPU_SOFTWARE_FLAGS) as context,
    ):
        page = StylePage(context, f"{server.url}/?{EXACT}")
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert page.stats()["backend"] == "wasm"
        page.page.select_option("#backend", "webgpu")  # reloads the page
        page.page.wait_for_function(
            "document.querySelector('#runtime').textContent.startsWith('Backend: webgpu')"
        )
        assert page.wait_for_phase("ready") == "ready", page.status()
        assert page.stats()["choice"]["by"] == "hand"
        assert page.choice().startswith("Backend webgpu: your choice")
        stylize_chosen(page, 64)
        assert matches_pytorch(page, tiny_model) <= TWO_LEVELS

        later = StylePage(context, f"{server.url}/?{EXACT}")
        assert later.wait_for_phase("ready") == "ready", later.status()
        assert later.stats()["backend"] == "webgpu"
        assert later.page.input_value("#backend") == "webgpu"
        later.page.select_option("#backend", "auto")
        later.page.wait_for_function(
            "document.querySelector('#runtime').textContent.startsWith('Backend: wasm')"
        )
        assert later.wait_for_phase("ready") == "ready", later.status()
        assert later.stats()["choice"]["by"] == "auto"
        for opened in (page, later):
            assert opened.problems.console_errors == [] and opened.problems.failed_requests == []


def test_webgpu_asked_for_without_an_adapter_gets_a_clear_message(tiny_site):
    with serve_directory(tiny_site, isolation_headers=True) as server, chromium() as context:
        page = StylePage(context, f"{server.url}/?backend=webgpu")
        assert page.wait_for_phase("ready") == "error"
        assert page.status() == (
            "The webgpu backend is not available in this browser: choose another backend."
        )
        assert page.page.is_disabled("#stylize")
