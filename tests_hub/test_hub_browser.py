"""The spawn page in Chromium (Playwright) with a real JupyterHub: what users see and use.

Profile cards with free/total GPUs, an unavailable profile with its reason, image details, the
GPU-count field, a deep link preselecting, the quota line, the link kept in step with the
choice, and WCAG AA (axe-core, injected into the page) for every text of the form in both of
JupyterHub's themes. Debian's Chromium (``GPU_DEVBOX_CHROMIUM`` to use another); axe-core from
the project's node_modules (``./run-tests`` installs it with configurable-http-proxy).

``GPU_DEVBOX_SCREENSHOTS=DIR`` saves the screenshots docs/spawner.md shows into DIR.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests import k8s_objects as k
from tests_hub.fake_api import FakeKube
from tests_hub.fake_kubelet import FakeKubelet
from tests_hub.hub import ROOT, Hub

pytestmark = pytest.mark.slow
CATALOG = Path(__file__).with_name("catalog-browser.yaml")
CHROMIUM = os.environ.get("GPU_DEVBOX_CHROMIUM", "/usr/bin/chromium")
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
#: The axe-core release ./run-tests installs (with configurable-http-proxy).
AXE_VERSION = "4.14.1"


@pytest.fixture(scope="module")
def hub(
    cluster: tuple[FakeKube, FakeKubelet], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Hub]:
    kube, _ = cluster
    kube.add(
        "nodes",
        [
            # R550: runs the CUDA 12.6 image only; 2 of 8 free
            k.gpu_node("a100-1", k.A100, driver="550.54.15", cuda="12.4"),
            # R580: runs both; 1 of 8 free
            k.gpu_node("h100-1", k.H100),
            k.node("cpu-1"),
        ],
    )
    kube.add("pods", [*k.gpu_pods("a100-1", 6), *k.gpu_pods("h100-1", 7)])
    workdir = tmp_path_factory.mktemp("hub-browser")
    config = kube.write_kubeconfig(str(workdir / "kubeconfig"))
    running = Hub(workdir, config, f"c.GPUDevboxSpawner.catalog_path = {str(CATALOG)!r}\n").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM} (set GPU_DEVBOX_CHROMIUM)"
    assert AXE.exists(), f"axe-core is not installed: npm install --no-save axe-core@{AXE_VERSION}"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, hub: Hub) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.goto(f"{hub.url}/hub/login")
    opened.fill("input[name=username]", "betty")
    opened.fill("input[name=password]", "x")
    opened.click("input[type=submit], button[type=submit]")
    opened.wait_for_url(re.compile(r"/(hub|user)/"))
    yield opened
    context.close()


def spawn_page(page: Page, hub: Hub, query: str = "") -> None:
    page.goto(f"{hub.url}/hub/spawn{query}")
    page.wait_for_selector("#gpu-devbox-form")


def set_theme(page: Page, theme: str) -> None:
    """JupyterHub's theme, through its navbar toggle."""
    if page.evaluate("document.documentElement.getAttribute('data-bs-theme')") != theme:
        page.click("#dark-theme-toggle")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", theme)


def axe(page: Page) -> dict[str, Any]:
    """axe-core's WCAG 2 A/AA results for the form."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate(
        """() => axe.run(document.getElementById("gpu-devbox-form"), {
            runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21aa"]},
        })"""
    )
    return result


def card(page: Page, slug: str) -> Any:
    return page.locator(f'.gdb-profile[data-profile="{slug}"]')


def luminance(css: str) -> float:
    """Relative luminance (WCAG) of an rgb()/rgba() colour."""
    parts = [float(x) for x in re.findall(r"[\d.]+", css)[:3]]
    channels = [c / 255 for c in parts]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_text_of_the_form_meets_wcag_aa_in_both_themes(
    page: Page, hub: Hub, theme: str
) -> None:
    spawn_page(page, hub)
    set_theme(page, theme)
    # the unavailable card and its reason are on the page: the text that was too faint
    expect(card(page, "mig").locator(".gdb-reason")).to_be_visible()
    result = axe(page)
    problems = [
        (v["id"], [n["target"] for n in v["nodes"]], v["nodes"][0].get("failureSummary"))
        for v in result["violations"]
    ]
    assert problems == []
    contrast = [p for p in result["passes"] if p["id"] == "color-contrast"]
    assert contrast, "axe checked no text's contrast"
    assert len(contrast[0]["nodes"]) >= 10
    # the theme's colours, not hard-coded light ones: a dark card in the dark theme
    background = card(page, "mig").evaluate("e => getComputedStyle(e).backgroundColor")
    assert (luminance(background) < 0.2) == (theme == "dark"), background
    shots = os.environ.get("GPU_DEVBOX_SCREENSHOTS")
    if shots:
        page.locator("#gpu-devbox-form").screenshot(path=f"{shots}/spawner-form-{theme}.png")


def test_cards_show_capacity_reasons_images_counts_and_the_quota(page: Page, hub: Hub) -> None:
    spawn_page(page, hub)
    # one line per kind of GPU the user's profiles offer, each in its own unit
    expect(page.locator(".gdb-quota")).to_have_text(
        ["You hold 0 of your 2 GPUs.", "You hold 0 of your 2 MIG slices."]
    )
    # free/total per card; several GPUs must be free on one node
    expect(card(page, "gpu").locator(".gdb-capacity")).to_contain_text("3 of 16 GPUs free")
    expect(card(page, "gpu").locator(".gdb-capacity")).to_contain_text("at most 2 on one node")
    expect(card(page, "a100").locator(".gdb-capacity")).to_contain_text("2 of 8 GPUs free")
    # a profile no node serves: disabled, with its reason, and the research one not shown
    mig = card(page, "mig")
    expect(mig.locator("input[type=radio]")).to_be_disabled()
    expect(mig.locator(".gdb-reason")).to_contain_text("Not available: ")
    expect(mig.locator(".gdb-reason")).to_contain_text("MIG")
    expect(card(page, "h100")).to_have_count(0)
    # the CPU profile is the default: its image's packages are shown
    expect(card(page, "cpu").locator("input[type=radio]")).to_be_checked()
    expect(card(page, "cpu").locator(".gdb-packages")).to_have_text(
        "Includes: NumPy 2.5, pandas 3.1"
    )
    # choose the GPU profile: its pickers come alive, the count field offers what fits
    card(page, "gpu").locator("label.gdb-head").click()
    gpus = card(page, "gpu").locator("select.gdb-gpus")
    expect(gpus).to_be_enabled()
    expect(card(page, "cpu").locator("select.gdb-image")).to_be_disabled()
    options = gpus.locator("option")
    expect(options).to_have_count(4)
    # (the attribute: Playwright before 1.57 reads an <option> as enabled whatever it says)
    expect(options.nth(1)).not_to_have_attribute("disabled", re.compile(".*"))
    expect(options.nth(2)).to_have_attribute("disabled", "")
    expect(options.nth(2)).to_have_text("3 (not free on one node now)")
    # the fine-tuning image: its details, and a warning that the profile's memory is short
    card(page, "gpu").locator("select.gdb-image").select_option("cuda13")
    info = card(page, "gpu").locator('.gdb-image-info[data-image="cuda13"]')
    expect(info).to_be_visible()
    expect(info.locator(".gdb-packages")).to_have_text(
        "Includes: PyTorch 2.14, transformers 5.23, PEFT 0.21"
    )
    expect(info.locator(".gdb-warning")).to_have_text(
        "This image recommends 64Gi of memory; this profile gives 1Gi."
    )
    expect(card(page, "gpu").locator('.gdb-image-info[data-image="cuda12"]')).to_be_hidden()
    shots = os.environ.get("GPU_DEVBOX_SCREENSHOTS")
    if shots:
        page.locator("#gpu-devbox-form").screenshot(path=f"{shots}/spawner-form-gpu.png")


def test_a_deep_link_preselects_and_the_address_follows_the_choice(
    page: Page, hub: Hub, cluster: tuple[FakeKube, FakeKubelet]
) -> None:
    kube, _ = cluster
    spawn_page(page, hub, "?profile=gpu&image=cuda12&gpus=2")
    gpu = card(page, "gpu")
    expect(gpu.locator("input[type=radio]")).to_be_checked()
    expect(gpu.locator("select.gdb-image")).to_have_value("cuda12")
    expect(gpu.locator("select.gdb-gpus")).to_have_value("2")
    assert not [p for p in kube.created_pods if p["metadata"]["name"] == "jupyter-betty"]
    # the copyable link and the address bar follow a new choice
    gpu.locator("select.gdb-gpus").select_option("1")
    gpu.locator("select.gdb-image").select_option("cuda13")
    expected = f"{hub.url}/hub/spawn?profile=gpu&image=cuda13&gpus=1"
    expect(page.locator("#gdb-link")).to_have_value(expected)
    assert page.url == expected
    card(page, "a100").locator("label.gdb-head").click()
    expect(page.locator("#gdb-link")).to_have_value(
        f"{hub.url}/hub/spawn?profile=a100&image=cuda12"
    )


def test_a_deep_link_asking_for_more_than_fits_says_what_changed(page: Page, hub: Hub) -> None:
    spawn_page(page, hub, "?profile=gpu&gpus=4")
    notice = page.locator(".gdb-notice")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("4 GPUs are not free on one node")
    expect(notice).to_contain_text("2 are selected instead")
    expect(card(page, "gpu").locator("select.gdb-gpus")).to_have_value("2")
