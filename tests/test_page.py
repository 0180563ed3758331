"""The web page in real headless Chromium (tiny-width model): what a user sees, case by case."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from sanet_tfjs.repo import ROOT
from sanet_tfjs.runtimes.browser import StylePage, chromium
from sanet_tfjs.server import serve_directory
from sanet_tfjs.stylize import reference_stylize

TWO_LEVELS = 2 / 255


@pytest.fixture(scope="module")
def site(tiny_site):
    return tiny_site


@pytest.fixture(scope="module")
def browser(site):
    """The site as the project's own servers serve it: with COOP/COEP headers."""
    with serve_directory(site, isolation_headers=True) as server, chromium() as context:
        yield context, server.url


@pytest.fixture
def page(browser):
    context, url = browser
    opened = StylePage(context, f"{url}/?backend=wasm&expose=1")
    assert opened.wait_for_phase("ready") == "ready", opened.status()
    yield opened
    assert opened.problems.console_errors == [] or "failed" in opened.status().lower()
    assert opened.problems.failed_requests == []
    opened.page.close()


@pytest.fixture(scope="module")
def images(tmp_path_factory, site):
    """Test files as a user would have them."""
    folder = tmp_path_factory.mktemp("images")
    photo = Image.open(site / "examples" / "grace_hopper.jpg").convert("RGB")
    rgba = photo.resize((200, 240)).convert("RGBA")
    alpha = np.full((240, 200), 255, np.uint8)
    alpha[:, :100] = 0  # the left half fully transparent
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(folder / "alpha.png")
    photo.convert("L").resize((180, 150)).save(folder / "gray.jpg", quality=92)
    photo.resize((4000, 3000)).save(folder / "huge.jpg", quality=85)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    photo.resize((240, 160)).save(folder / "rotated.jpg", exif=exif)
    Image.new("RGB", (10, 10), "red").save(folder / "tiny.png")
    Image.new("RGB", (2000, 2000), "blue").save(folder / "big-square.png")
    (folder / "notes.png").write_text("this is not an image\n")
    return folder


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


def stylize_example(page: StylePage, site, max_resolution: int) -> np.ndarray:
    """The bundled example photo and painting, stylized; the result pixels in [0, 1]."""
    page.choose("content", site / "examples" / "grace_hopper.jpg")
    page.choose("style", site / "examples" / "swirls.png")
    assert page.stylize(1, max_resolution) == "done", page.status()
    return page.result_pixels().astype(np.float32) / 255


def matches_pytorch(page: StylePage, model) -> float:
    inputs = page.last_inputs()
    expected = reference_stylize(
        model,
        inputs["content"].astype(np.float32) / 255,
        inputs["style"].astype(np.float32) / 255,
        inputs["iters"],
        inputs["maxResolution"],
    )
    return float(np.abs(page.result_pixels() / 255 - expected).max())


def visible(page: StylePage, selector: str) -> bool:
    return page.page.is_visible(selector)


def test_happy_path(page, site, model):
    assert page.step() == "choose"
    page.choose("content", site / "examples" / "grace_hopper.jpg")
    assert page.step() == "choose"
    page.choose("style", site / "examples" / "swirls.png")
    assert page.step() == "stylize"
    assert page.stylize(1, 128) == "done"
    assert page.step() == "done"
    assert page.page.eval_on_selector_all(
        "#phases li", "items => items.map(item => item.dataset.state)"
    ) == ["done", "done", "done", "done", "active"]
    assert page.status().startswith("Done in") and page.status_kind() == "done"
    assert visible(page, "#result") and visible(page, "#download")
    assert page.page.get_attribute("#download", "href").startswith("blob:")
    assert "Elapsed" in page.page.inner_text("#elapsed")
    assert page.result_pixels().shape == (128, 109, 3)  # a 512x600 photo, longer side 128
    assert matches_pytorch(page, model) <= TWO_LEVELS
    assert "stand-in weights" in page.page.inner_text("#banner")


def test_two_iterations_offline_once_loaded(page, site, model):
    page.page.context.set_offline(True)  # everything the page needs is already loaded
    try:
        page.choose("content", site / "examples" / "grace_hopper.jpg")
        page.choose("style", site / "examples" / "waves.png")
        assert page.stylize(2, 96) == "done", page.status()
    finally:
        page.page.context.set_offline(False)
    assert page.last_inputs()["iters"] == 2
    assert matches_pytorch(page, model) <= TWO_LEVELS


def test_the_same_style_again_is_not_encoded_again(page, site, images, model):
    """Another photo and other iterations with the same style reuse its features; the style
    scaled to another size, or another style, are encoded again. Each result is PyTorch's."""
    page.choose("content", site / "examples" / "grace_hopper.jpg")
    page.choose("style", site / "examples" / "swirls.png")
    assert page.stylize(1, 96) == "done", page.status()
    page.choose("content", images / "gray.jpg")
    assert page.stylize(2, 96) == "done", page.status()
    assert "same style" in page.status()
    assert matches_pytorch(page, model) <= TWO_LEVELS
    assert page.stylize(1, 128) == "done", page.status()
    page.choose("style", site / "examples" / "waves.png")
    assert page.stylize(1, 128) == "done", page.status()
    assert [run["styleReused"] for run in page.stats()["runs"]] == [False, True, False, False]
    assert matches_pytorch(page, model) <= TWO_LEVELS


def test_png_with_alpha_is_composited_over_white(page, site, images):
    page.choose("content", images / "alpha.png")
    page.choose("style", site / "examples" / "swirls.png")
    assert page.stylize(1, 240) == "done", page.status()
    content = page.last_inputs()["content"]
    assert content.shape == (240, 200, 3)
    assert (content[:, :100] == 255).all()  # transparent pixels became white


def test_grayscale_jpeg(page, site, images):
    page.choose("content", images / "gray.jpg")
    page.choose("style", site / "examples" / "swirls.png")
    assert page.stylize(1, 200) == "done", page.status()
    content = page.last_inputs()["content"].astype(int)
    assert content.shape == (150, 180, 3)
    assert np.abs(content[..., 0] - content[..., 1]).max() <= 1


def test_exif_rotated_photo_is_upright(page, site, images):
    page.choose("content", images / "rotated.jpg")  # stored 240x160, displayed 160x240
    page.choose("style", site / "examples" / "swirls.png")
    assert page.stylize(1, 512) == "done", page.status()
    assert page.last_inputs()["contentShape"] == [240, 160, 3]


def test_huge_photo_is_scaled_down_before_the_model(page, site, images):
    page.choose("content", images / "huge.jpg")
    assert "4000x3000" in page.status()
    page.choose("style", site / "examples" / "waves.png")
    assert page.stylize(1, 256) == "done", page.status()
    assert page.last_inputs()["contentShape"] == [192, 256, 3]
    assert page.result_pixels().shape == (192, 256, 3)
    assert page.download_size() == [3000, 4000]  # the result at the photo's own size
    assert "4000x3000" in page.page.inner_text("#download")


def test_before_after_comparison(page, site):
    """The result lies over the content the model saw, shown up to the slider (keyboard
    operable); 0 shows the content alone, 100 the result alone."""
    page.choose("content", site / "examples" / "grace_hopper.jpg")
    page.choose("style", site / "examples" / "waves.png")
    assert page.stylize(1, 96) == "done", page.status()
    before = page.page.evaluate(
        """() => {
            const c = document.querySelector('#before');
            return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);
        }"""
    )
    before = np.array(before, np.uint8).reshape(*page.last_inputs()["contentShape"][:2], 4)
    assert (before[..., :3] == page.last_inputs()["content"]).all()
    clip = "document.querySelector('#result').style.clipPath"
    assert page.page.evaluate(clip) == "inset(0px 0px 0px 50%)"
    page.page.focus("#compare")
    page.page.keyboard.press("Home")
    assert page.page.evaluate(clip) == "inset(0px 0px 0px 100%)"
    page.page.keyboard.press("End")
    assert page.page.evaluate(clip) == "inset(0px 0px 0px 0%)"
    assert "100%" in page.page.get_attribute("#compare", "aria-valuetext")


def test_non_image_file_gets_a_clear_message(page, images):
    page.choose("content", images / "notes.png")
    assert page.status_kind() == "error"
    assert '"notes.png" is not an image this browser can read' in page.status()
    assert page.page.is_disabled("#stylize")


def test_too_small_image_gets_a_clear_message(page, images):
    page.choose("style", images / "tiny.png")
    assert page.status_kind() == "error"
    assert "10x10: too small" in page.status() and "17" in page.status()
    assert page.page.is_disabled("#stylize")


def open_page(browser, query: str) -> StylePage:
    context, url = browser
    opened = StylePage(context, f"{url}/?backend=wasm&expose=1&{query}")
    assert opened.wait_for_phase("ready") == "ready", opened.status()
    return opened


def test_resolution_over_the_memory_guard_is_refused(page, images):
    page.choose("content", images / "big-square.png")
    page.choose("style", images / "big-square.png")
    assert page.stylize(1, 2048) == "error"
    status = page.status()
    assert "needs about" in status and "MB of memory" in status and "or less" in status
    assert not visible(page, "#result")
    assert page.page.is_enabled("#stylize")  # the user can pick a smaller resolution


def test_the_memory_guard_names_a_resolution_that_runs(browser, images):
    """A tab allowed 400 MB: the guard refuses 1024 and names a size, which then runs, and
    the wasm heap it took stays within the estimate the guard made."""
    page = open_page(browser, "memory_mb=400")
    try:
        page.choose("content", images / "big-square.png")
        page.choose("style", images / "big-square.png")
        assert page.stylize(1, 1024) == "error"
        suggested = int(re.search(r"choose (\d+) or less", page.status()).group(1))
        assert 256 <= suggested < 1024
        assert page.stylize(1, suggested) == "done", page.status()
        (run,) = page.stats()["runs"]
        assert run["heapBytes"] <= run["neededBytes"] <= 400e6
    finally:
        page.page.close()


def test_running_out_of_memory_is_reported_and_the_page_recovers(browser, images):
    """With the guard lifted, 2048 px images need a 2.1 GB attention slice and its softmax:
    past wasm32's 4 GB. The page says so, names a smaller size, and stylizes again."""
    page = open_page(browser, "memory_mb=100000")
    try:
        page.choose("content", images / "big-square.png")
        page.choose("style", images / "big-square.png")
        assert page.stylize(1, 2048) == "error"
        status = page.status()
        assert "ran out of memory at maximum resolution 2048" in status, status
        assert re.search(r"choose \d+ or less", status)
        assert page.page.is_enabled("#stylize")
        assert page.stylize(1, 128) == "done", page.status()
        assert page.result_pixels().shape == (128, 128, 3)
    finally:
        page.page.close()


AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"


def serious_accessibility_violations(page: StylePage) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.page.evaluate("typeof axe !== 'undefined'"):
        page.page.add_script_tag(path=str(AXE))
    violations = page.page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]


def test_no_serious_accessibility_violations(page, site):
    """axe-core on the page when ready, after an error, and with a result shown."""
    assert serious_accessibility_violations(page) == []
    page.choose("content", site / "examples" / "grace_hopper.jpg")
    page.choose("style", site / "examples" / "swirls.png")
    page.page.fill("#max-resolution", "5")
    page.page.click("#stylize")
    assert page.wait_for_phase("done") == "error"
    assert serious_accessibility_violations(page) == []
    assert page.stylize(1, 96) == "done", page.status()
    assert serious_accessibility_violations(page) == []
    # the check itself: a button without a name is critical
    page.page.evaluate("document.querySelector('main').append(document.createElement('button'))")
    assert [v.split(" ")[0] for v in serious_accessibility_violations(page)] == ["button-name"]


def tab_to(page: StylePage, selector: str, limit: int = 40) -> None:
    """Press Tab until `selector` has the focus."""
    for _ in range(limit):
        page.page.keyboard.press("Tab")
        if page.page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{selector} is not reached with Tab")


def test_keyboard_alone_stylizes_and_compares(page, model):
    """Examples, settings, Stylize and the comparison, with the keyboard only."""
    tab_to(page, "#content-examples button")
    page.page.keyboard.press("Enter")
    page.page.wait_for_function("window.sanet.status.startsWith('Content:')")
    tab_to(page, "#style-examples button")
    page.page.keyboard.press("Enter")
    page.page.wait_for_function("window.sanet.status.startsWith('Style:')")
    tab_to(page, "#max-resolution")
    page.page.keyboard.press("Control+A")
    page.page.keyboard.type("64")
    tab_to(page, "#stylize")
    page.page.evaluate("window.sanet.phase = 'submitted'")
    page.page.keyboard.press("Enter")
    assert page.wait_for_phase("done") == "done", page.status()
    assert max(page.result_pixels().shape) == 64
    assert matches_pytorch(page, model) <= TWO_LEVELS
    tab_to(page, "#compare")
    page.page.keyboard.press("ArrowLeft")
    assert page.page.input_value("#compare") == "49"


def test_phone_sized_screen(browser, site, model):
    """On a 390x844 screen nothing is wider than the screen, before or after a result, and
    the page stylizes."""
    context, url = browser
    phone = {"width": 390, "height": 844}
    page = StylePage(context, f"{url}/?backend=wasm&expose=1", viewport=phone)
    try:
        assert page.wait_for_phase("ready") == "ready", page.status()
        overflow = "document.documentElement.scrollWidth - window.innerWidth"
        assert page.page.evaluate(overflow) <= 0
        page.choose("content", site / "examples" / "grace_hopper.jpg")
        page.choose("style", site / "examples" / "swirls.png")
        for selector in ("#stylize", "#content-file", "#style-file", "#max-resolution"):
            box = page.page.locator(selector).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= phone["width"], selector
        assert page.stylize(1, 512) == "done", page.status()
        assert page.page.evaluate(overflow) <= 0
        shown = page.page.locator("#result").bounding_box()
        assert shown["width"] <= phone["width"]
        assert matches_pytorch(page, model) <= TWO_LEVELS
        assert serious_accessibility_violations(page) == []
    finally:
        page.page.close()
