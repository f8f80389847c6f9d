"""The distribution widget in a real browser: headless JupyterLab + Playwright driving Debian's chromium.

Starts JupyterLab on 127.0.0.1 (a free port, a random token, a temp copy of tests/browser/widget_demo.ipynb and
temp config/runtime/settings folders), runs all cells from the Lab menu, presses the right arrow on the slider's
handle and checks that the chart's <img> changed, then clicks token buttons. Leaves screenshots at
outputs/browser/widget.png (the widget) and outputs/browser/lab.png (the Lab window). The server
(and with it the kernel) is always shut down. Skipped when chromium or playwright is not installed; never runs
`playwright install` (CI installs Debian's chromium, see .ci/run).
"""
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT

CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if os.path.exists(p)), None)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
NOTEBOOK = ROOT / "tests" / "browser" / "widget_demo.ipynb"
SCREENSHOT = ROOT / "outputs" / "browser" / "widget.png"

if CHROMIUM is None:
    pytest.skip("Debian's chromium is not installed (apt-get install chromium); the browser test needs it",
                allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"jupyter lab did not answer {url} within {timeout:.0f} s")


def start_session(base: str, token: str, path: str):
    body = json.dumps({"path": path, "name": path, "type": "notebook", "kernel": {"name": "python3"}}).encode()
    req = urllib.request.Request(f"{base}/api/sessions", data=body, method="POST",
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=30).close()


def shutdown(proc, base: str, token: str, log):
    """Graceful first (the API shuts the kernels down too), then SIGTERM, then SIGKILL, to our process group."""
    if proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}/api/shutdown", method="POST",
                                         headers={"Authorization": f"token {token}"})
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass
        for sig, wait in ((None, 10), (signal.SIGTERM, 5), (signal.SIGKILL, 5)):
            if sig is not None and proc.poll() is None:
                os.killpg(proc.pid, sig)  # the session we started for the server (it and its kernel only)
            try:
                proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
    log.close()


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a copy of the demo notebook; yields (base url, token)."""
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    port, token = free_port(), secrets.token_hex(16)
    labconfig = tmp_path / "config" / "labconfig"  # no "news?" toast over the widget
    labconfig.mkdir(parents=True)
    (labconfig / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               IPYTHONDIR=str(tmp_path / "ipython"), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg")
    log = open(tmp_path / "lab.log", "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.open_browser=False",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           f"--LabApp.user_settings_dir={tmp_path / 'settings'}", f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # containers and CI often run as root
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/status?token={token}", proc)
        start_session(base, token, NOTEBOOK.name)  # Lab then attaches to a running kernel (no kernel dialog)
        yield base, token
    except BaseException:
        print((tmp_path / "lab.log").read_text()[-4000:])
        raise
    finally:
        shutdown(proc, base, token, log)


def run_all_cells(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()


def chart_src(page) -> str:
    return page.locator(".widget-html-content img[alt^='student vs teacher']").first.get_attribute("src")


def wait_chart(page, condition, timeout: float = 30.0):
    """Poll the chart's <img> src until condition(src) holds (the kernel re-renders it after a slider move)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition(chart_src(page)):
            return
        page.wait_for_timeout(200)
    raise AssertionError("the chart image did not change as expected")


def test_widget_in_jupyterlab(lab):
    base, token = lab
    start = time.monotonic()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK.name}?token={token}")
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            page.get_by_text(re.compile(r"\|\s*Idle")).first.wait_for(timeout=90_000)  # the status bar: kernel up
            run_all_cells(page)
            slider = page.locator(".widget-slider .noUi-handle").first
            deadline, reran = time.monotonic() + 120, False  # kernel + torch import + tiny model
            while not slider.is_visible():
                assert time.monotonic() < deadline, "the widget did not render within 120 s"
                select = page.locator(".jp-Dialog button", has_text="Select")
                if select.count() and select.first.is_visible():  # Lab asks for a kernel after all
                    select.first.click()
                elif not reran and time.monotonic() > deadline - 90 and \
                        page.locator(".jp-InputPrompt", has_text="[ ]").count() >= 2:
                    reran = True  # nothing ran (the dialog swallowed the command): run again, once
                    run_all_cells(page)
                page.wait_for_timeout(500)
            page.locator(".widget-html-content img[alt^='student vs teacher']").first.wait_for()
            readout = page.locator(".widget-slider .widget-readout").first
            assert readout.inner_text().strip() == "0"
            before = chart_src(page)
            assert before.startswith("data:image/png;base64,")

            slider.focus()
            page.keyboard.press("ArrowRight")
            wait_chart(page, lambda src: src != before)
            after = chart_src(page)
            assert after.startswith("data:image/png;base64,") and readout.inner_text().strip() == "1"

            # a click on a token button moves the slider (and the chart) too
            page.locator(".widget-button").last.click()
            last = str(page.locator(".widget-button").count() - 1)
            page.wait_for_function("(v) => document.querySelector('.widget-slider .widget-readout').innerText.trim()"
                                   " === v", arg=last, timeout=30_000)
            wait_chart(page, lambda src: src not in (before, after))

            page.locator(".widget-button").nth(1).click()  # back to position 1: its chart again
            wait_chart(page, lambda src: src == after)
            assert readout.inner_text().strip() == "1"
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            output = page.locator(".jp-OutputArea-output").filter(has=page.locator(".widget-slider")).first
            output.scroll_into_view_if_needed()
            output.screenshot(path=str(SCREENSHOT))  # the whole widget
            page.screenshot(path=str(SCREENSHOT.with_name("lab.png")))  # the Lab window around it
        except BaseException:
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT.with_name("failure.png")))  # what the browser showed
            raise
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
    assert time.monotonic() - start < 180
