"""Driving the web page in Debian's headless Chromium with Playwright, as a person would.

Used by the `smoke` stage and the page tests: open the page, give it images through its file
inputs, set the options, press Stylize, wait for what the page says, read back its pixels.
Every console error and failed request is recorded, so a caller can fail on any.
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import PipelineError

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
    # performance.measureUserAgentSpecificMemory() answers at once, not at the next garbage
    # collection (11-18 s per call here otherwise).
    "--enable-blink-features=ForceEagerMeasureMemory",
]
# WebGPU on SwiftShader, Chromium's software adapter (Vulkan on the CPU): slow, but the same
# shaders as on a real GPU, so the WebGPU backend's results can be checked on machines without
# one. WebGPU needs a secure context: the loopback servers' http://127.0.0.1 is one.
WEBGPU_SOFTWARE_FLAGS = ("--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader")
# No WebGL (nor WebGPU): a browser whose graphics are blocked.
NO_GPU_FLAGS = ("--disable-software-rasterizer",)
PAGE_TIMEOUT_MS = 300_000


class BrowserError(PipelineError):
    """The browser or the page did not do what was asked."""


@dataclass
class PageProblems:
    console_errors: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)


@contextlib.contextmanager
def chromium(service_workers: str = "allow", flags: Sequence[str] = ()) -> Iterator:
    """A headless Debian Chromium (never a browser downloaded by a tool) with a fresh profile.
    `service_workers="block"` stands for a browser or host where pages get none; `flags` are
    added to CHROMIUM_FLAGS (e.g. WEBGPU_SOFTWARE_FLAGS)."""
    if not Path(CHROMIUM).exists():
        raise BrowserError(
            f"{CHROMIUM} not found: run scripts/setup.sh (installs Debian's chromium)"
        )
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_FLAGS, *flags],
                viewport={"width": 1100, "height": 1200},
                service_workers=service_workers,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def open_tab(context, cores: int | None = None):
    """A new tab; with `cores`, it reports that many logical cores (navigator.
    hardwareConcurrency) from its first page on, reloads included. tfjs-backend-wasm runs at
    most cores / 2 threads, so threads can be tried on a 2-core machine."""
    page = context.new_page()
    if cores is not None:
        session = context.new_cdp_session(page)
        session.send("Emulation.setHardwareConcurrencyOverride", {"hardwareConcurrency": cores})
    return page


# A connection the user set to save data (Chromium's Data Saver, Android's Lite mode):
# navigator.connection.saveData, which no command-line flag or DevTools command sets.
SAVE_DATA_SCRIPT = (
    "Object.defineProperty(NetworkInformation.prototype, 'saveData', { get: () => true });"
)


class StylePage:
    """The page at `url`, opened in a new tab of `context` (reporting `cores`, sized
    `viewport` {width, height}, and with `init_script` run before the page's own, if given).
    Every URL the tab requests is kept in `requested`."""

    def __init__(
        self,
        context,
        url: str,
        cores: int | None = None,
        viewport: dict | None = None,
        init_script: str | None = None,
    ) -> None:
        self.page = open_tab(context, cores)
        if viewport is not None:
            self.page.set_viewport_size(viewport)
        if init_script is not None:
            self.page.add_init_script(init_script)
        self.page.set_default_timeout(PAGE_TIMEOUT_MS)
        self.problems = PageProblems()
        self.requested: list[str] = []
        self.page.on("request", lambda request: self.requested.append(request.url))
        self.page.on(
            "console",
            lambda message: (
                message.type == "error" and self.problems.console_errors.append(message.text)
            ),
        )
        self.page.on("pageerror", lambda error: self.problems.console_errors.append(str(error)))
        self.page.on(
            "requestfailed",
            lambda request: self.problems.failed_requests.append(
                f"{request.url}: {request.failure}"
            ),
        )
        self.page.on(
            "response",
            lambda response: (
                response.status >= 400
                and self.problems.failed_requests.append(f"{response.url}: HTTP {response.status}")
            ),
        )
        self.page.goto(url)

    def wait_for_phase(self, *phases: str) -> str:
        """Wait until the page reaches one of `phases` (or 'error'); return the phase."""
        wanted = [*phases, "error"]
        self.page.wait_for_function(f"{wanted!r}.includes(window.sanet && window.sanet.phase)")
        return self.page.evaluate("window.sanet.phase")

    def status(self) -> str:
        return self.page.inner_text("#status")

    def runtime(self) -> str:
        """What the page says it runs on: backend, threads, cross-origin isolation."""
        return self.page.inner_text("#runtime")

    def choice(self) -> str:
        """What the page says about how its backend was chosen (auto's reason, or by hand)."""
        return self.page.inner_text("#choice")

    def offline(self) -> str:
        """What the page says about offline use."""
        return self.page.inner_text("#offline")

    def step(self) -> str:
        """The step of #phases the page marks as current."""
        return self.page.get_attribute("#phases [aria-current=step]", "data-phase") or ""

    def download_size(self) -> list[int]:
        """[height, width] of the PNG the download link gives."""
        return self.page.evaluate(
            """async () => {
                const blob = await (await fetch(document.querySelector('#download').href)).blob();
                const bitmap = await createImageBitmap(blob);
                return [bitmap.height, bitmap.width];
            }"""
        )

    def status_kind(self) -> str:
        return self.page.get_attribute("#status", "data-kind") or ""

    def choose(self, role: str, path: Path) -> None:
        """Give the page an image through its file picker, as a user would."""
        previous = self.status()
        self.page.set_input_files(f"#{role}-file", str(path))
        self.page.wait_for_function(
            "previous => document.querySelector('#status').textContent !== previous", arg=previous
        )

    def stylize(self, iters: int, max_resolution: int) -> str:
        """Set the options, press Stylize, wait for the outcome; return the phase."""
        self.page.select_option("#iters", str(iters))
        self.page.fill("#max-resolution", str(max_resolution))
        self.page.evaluate("window.sanet.phase = 'submitted'")
        self.page.click("#stylize")
        return self.wait_for_phase("done")

    def result_pixels(self) -> np.ndarray:
        """The result canvas as uint8 RGB [H, W, 3]."""
        width, height, data = self.page.evaluate(
            """async () => {
                const { bytesToBase64 } = await import('./sanet.mjs');
                const c = document.querySelector('#result');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return [c.width, c.height, bytesToBase64(d)];
            }"""
        )
        rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(height, width, 4)
        return rgba[..., :3]

    def last_inputs(self) -> dict:
        """The model inputs of the last run (the page must be opened with ?expose=1)."""
        raw = self.page.evaluate("window.sanet.lastInputs")
        if raw is None:
            raise BrowserError("the page exposed no inputs: open it with ?expose=1")
        for name in ("content", "style"):
            shape = raw[f"{name}Shape"]
            raw[name] = np.frombuffer(base64.b64decode(raw[name]), np.uint8).reshape(shape)
        return raw

    def stats(self) -> dict:
        return self.page.evaluate("window.sanet.stats")
