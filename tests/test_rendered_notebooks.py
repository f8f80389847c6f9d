"""The notebooks as a learner reads them on GitHub or nbviewer: rendered from their saved outputs, with no kernel.

Each notebook is converted to HTML by nbconvert (the lab template, as nbviewer renders) and opened in headless
Chromium (Debian's, through Playwright, as tests/test_browser.py). For each, the page must not show a reader what
only a broken run shows (an error, a red stderr box, "nan%", a progress bar frozen mid-way), and every key figure or
view must be there and be drawn; each of those is screenshotted into docs/images/notebooks/<notebook>-<name>.png,
the pictures the README and the issue tracker point at. Skipped without chromium or playwright.
"""
import os
import re

import pytest
from conftest import ROOT

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
SHOTS = ROOT / "docs" / "images" / "notebooks"

# notebook -> (cell id, picture name): the figures and views a reader should see
KEY_OUTPUTS = {
    "00_setup_and_baseline": [],
    "01_basic_sdpo": [("nb01-12", "data-flow"), ("nb01-20", "comparison"), ("nb01-26", "teacher-vs-student"),
                      ("nb01-60", "regime-map")],
    "02_sdpo_with_unsloth": [("nb02-13", "teacher-prompt"), ("nb02-29", "blend-vs-grpo")],
    "03_sdpo_rich_feedback": [("nb03-17", "comparison"), ("nb03-21", "teacher-vs-student")],
    "04_test_time_sdpo": [("nb04-14", "discovery")],
}
NEVER_SHOWN = {"an error": re.compile(r"Traceback \(most recent call last\)"), "nan%": re.compile(r"\bnan%"),
               "a progress bar saved mid-way": re.compile(r"\|\s*0/\d+ \[")}

if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def render(notebook: str, tmp_path) -> str:
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    page = tmp_path / f"{notebook}.html"
    page.write_text(body)
    return page.as_uri()


@pytest.mark.parametrize("notebook", sorted(KEY_OUTPUTS))
def test_a_rendered_notebook_reads_cleanly_and_shows_its_figures(notebook, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    try:
        page.goto(render(notebook, tmp_path))
        text = page.inner_text("body")
        for what, pattern in NEVER_SHOWN.items():
            assert not pattern.search(text), f"{notebook} shows {what}: {pattern.search(text).group()!r}"
        stderr = page.locator('[data-mime-type="application/vnd.jupyter.stderr"]')
        assert stderr.count() == 0, f"{notebook}: stderr drawn as an error box: {stderr.first.inner_text()[:200]!r}"
        SHOTS.mkdir(parents=True, exist_ok=True)
        for cell_id, name in KEY_OUTPUTS[notebook]:
            output = page.locator(f'[id="cell-id={cell_id}"] .jp-Cell-outputArea')
            assert output.count() == 1, f"{notebook}: cell {cell_id} ({name}) is missing or has no output area"
            box = output.bounding_box()
            assert box and box["height"] > 80, f"{notebook}: {name} ({cell_id}) is not drawn: {box}"
            images = output.locator("img")
            for i in range(images.count()):  # an <img> that did not decode has naturalWidth 0
                assert images.nth(i).evaluate("img => img.complete && img.naturalWidth > 0"), (notebook, name, i)
            path = SHOTS / f"{notebook[:2]}-{name}.png"
            output.screenshot(path=str(path))
            assert path.stat().st_size > 5_000, f"{path} is (nearly) empty"
    finally:
        page.close()
