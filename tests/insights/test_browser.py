"""The web app in a real headless Chromium, driven by Playwright (skipped without Chromium).

Screenshots are saved under the test's tmp dir (``insights-1280x800.png``,
``insights-narrow.png``, ``insights-multimodal.png``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from perspicio.insights import AttributionVisualizer, Batch
from perspicio.insights.features import ImageFeature

from .conftest import multimodal_visualizer

pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium installed (Debian: apt-get install chromium)"
)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(30_000)
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.problems = problems
    yield page
    page.close()


def digits_explorer() -> AttributionVisualizer:
    """The trained digits CNN next to an untrained one, on the digits test split."""
    pytest.importorskip("sklearn")
    from perspicio.testing.digits import digits_model
    from perspicio.testing.models import ConvNet

    model, data = digits_model()
    x, y = data.x_test[:64], data.y_test[:64]
    return AttributionVisualizer(
        [model, ConvNet(seed=7).eval()],
        [str(d) for d in range(10)],
        [ImageFeature("Digit", [lambda t: t * 0], [])],
        [Batch(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)],
        score_func=lambda out: out.softmax(-1),
    )


def _images_loaded(page: Any) -> bool:
    return page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def test_pick_method_fetch_reattribute_and_narrow_layout(page: Any, tmp_path: Path) -> None:
    vis = digits_explorer()
    url = vis.serve()
    try:
        page.goto(url)
        page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
        page.select_option("select.psp-method", "IntegratedGradients")
        page.fill("input[data-arg='n_steps']", "16")
        page.click("button.psp-fetch")
        page.wait_for_selector(".psp-example >> nth=3")
        assert page.locator(".psp-example").count() == 4
        assert page.locator(".psp-model").count() == 8  # two models side by side
        assert page.locator(".psp-figure img").count() == 24  # original, heat map, blended
        page.wait_for_function(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.locator(".psp-legend-bar").count() == 8
        assert (
            page.locator(".psp-cbar-fill").first.evaluate("e => parseFloat(e.style.width)") == 100
        )

        section = page.locator(".psp-example").first.locator(".psp-model").first
        other = section.locator(".psp-pred:not(.is-target)").first
        target = other.get_attribute("data-class")
        other.click()
        page.wait_for_selector(
            f".psp-example >> nth=0 >> .psp-model[data-model='0'] "
            f".psp-pred.is-target[data-class='{target}']"
        )
        assert _images_loaded(page)
        page.screenshot(path=str(tmp_path / "insights-1280x800.png"), full_page=False)

        page.click("button.psp-next")
        page.wait_for_selector(".psp-example[data-example='4']")

        page.set_viewport_size({"width": 420, "height": 900})
        controls = page.locator(".psp-controls").bounding_box()
        results = page.locator(".psp-results").bounding_box()
        assert controls["y"] + controls["height"] <= results["y"] + 1  # stacked, not side by side
        assert page.evaluate("document.documentElement.scrollWidth") <= 420
        page.screenshot(path=str(tmp_path / "insights-narrow.png"), full_page=False)
        assert page.problems == []
    finally:
        vis.stop()


def test_filters_errors_and_escaping(page: Any, tmp_path: Path) -> None:
    evil = '<img src=x onerror="window.__owned = 1">'
    vis = multimodal_visualizer(classes=[evil, "neutral", "positive"])
    url = vis.serve()
    try:
        page.goto(url)
        page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
        page.fill(".psp-class-input", "neutral")
        page.press(".psp-class-input", "Enter")
        assert page.locator(".psp-chip").count() == 1
        page.click(".psp-segmented button[data-value='all']")
        page.click("button.psp-fetch")
        page.wait_for_selector(".psp-example")
        for example in page.locator(".psp-example").all():
            label = example.locator(".psp-label strong").inner_text()
            top = example.locator(".psp-pred").first.locator(".psp-pred-name").inner_text()
            assert "neutral" in (label, top)
        assert page.locator(".psp-grow").count() >= 3  # general feature bars
        assert page.locator(".psp-token").count() >= 5  # coloured tokens
        assert page.locator(".psp-tokens b, .psp-glabel i").count() == 0  # shown, not parsed
        page.locator(".psp-chip-x").click()
        page.click("button.psp-fetch")
        page.wait_for_selector(f".psp-pred-name:text-is('{evil}')")
        assert page.evaluate("window.__owned") is None

        page.select_option("select.psp-method", "IntegratedGradients")
        page.fill("input[data-arg='n_steps']", "0")
        page.click("button.psp-fetch")
        page.wait_for_selector(".psp-error:not([hidden])")
        assert "n_steps" in page.locator(".psp-error").inner_text()
        page.screenshot(path=str(tmp_path / "insights-multimodal.png"), full_page=True)
        assert [p for p in page.problems if "422" not in p] == []
    finally:
        vis.stop()


STAND_IN_MODEL = """async ([esm, widthPx]) => {
  // the part of anywidget's model API the widget uses; messages go to Python via pySend
  const listeners = new Set();
  const model = {
    on(event, cb) { if (event === "msg:custom") listeners.add(cb); },
    off(event, cb) { listeners.delete(cb); },
    send(content) { window.pySend(content).then((reply) => listeners.forEach((cb) => cb(reply))); },
  };
  const el = document.getElementById("cell");
  el.style.width = widthPx;
  const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
  const module = await import(url);
  window.__cleanup = await module.default.render({ model, el });
}"""


def test_widget_module_renders_in_a_narrow_notebook_cell(page: Any, tmp_path: Path) -> None:
    from perspicio.insights.widget import Responder, widget_class

    from .conftest import image_visualizer

    responder = Responder(image_visualizer(n_models=2, n=8).engine, send=lambda reply: None)
    page.expose_function("pySend", responder.answer)
    page.set_content("<!doctype html><html><body><div id='cell'></div></body></html>")
    page.add_style_tag(content=str(widget_class()._css))
    page.evaluate(STAND_IN_MODEL, [str(widget_class()._esm), "640px"])
    page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
    page.select_option("select.psp-method", "Saliency")
    page.click("button.psp-fetch")
    page.wait_for_selector(".psp-example >> nth=3")
    section = page.locator(".psp-model").first
    other = section.locator(".psp-pred:not(.is-target)").first
    target = other.get_attribute("data-class")
    other.click()
    page.wait_for_selector(f".psp-model[data-model='0'] .psp-pred.is-target[data-class='{target}']")
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth)")
    controls = page.locator(".psp-controls").bounding_box()
    results = page.locator(".psp-results").bounding_box()
    assert controls["y"] + controls["height"] <= results["y"] + 1  # the cell is narrow
    page.screenshot(path=str(tmp_path / "insights-widget.png"), full_page=False)
    page.evaluate("window.__cleanup()")
    assert page.locator(".psp-root").count() == 0
    assert page.problems == []


class _Sleepy(nn.Module):
    """The test ConvNet, slowed down in every forward pass so that a job can be cancelled."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        from perspicio.testing.models import ConvNet

        self.net = ConvNet(seed=3).eval()
        self.delay = delay

    def forward(self, x: Tensor) -> Tensor:
        time.sleep(self.delay)
        return self.net(x)


def _sleepy_explorer(delay: float = 0.0) -> AttributionVisualizer:
    from .conftest import image_dataset

    return AttributionVisualizer(
        _Sleepy(delay),
        [f"digit {d}" for d in range(10)],
        [ImageFeature("Photo", [torch.zeros_like], [])],
        image_dataset(40, batch=8),
        score_func=lambda out: out.softmax(-1),
    )


def _indices(page: Any) -> list[int]:
    return [int(e.get_attribute("data-example")) for e in page.locator(".psp-example").all()]


def _fetch(page: Any) -> None:
    """Press Fetch and wait until the results were replaced (success or failure)."""
    page.evaluate(
        "for (const c of document.querySelector('.psp-results').children) c.dataset.old = 1"
    )
    page.click("button.psp-fetch")
    page.wait_for_function(
        "() => !document.querySelector('.psp-results > [data-old]') && "
        "!document.querySelector('button.psp-fetch').disabled"
    )


def test_token_paging_filters_top_k_and_the_cards_method(page: Any) -> None:
    vis = _sleepy_explorer()
    url = vis.serve()
    try:
        refused = page.goto(url.split("?")[0])
        assert refused is not None and refused.status == 403
        assert "token" in page.content()
        page.goto(url)
        page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
        page.select_option("select.psp-method", "Saliency")
        page.fill("input.psp-top-k", "5")
        _fetch(page)
        assert _indices(page) == [0, 1, 2, 3]
        assert page.locator(".psp-model").first.locator(".psp-pred").count() == 5
        assert page.is_disabled("button.psp-prev")
        page.click("button.psp-next")
        page.wait_for_selector(".psp-example[data-example='4']")
        assert _indices(page) == [4, 5, 6, 7]
        page.click("button.psp-prev")
        page.wait_for_selector(".psp-example[data-example='0']")
        assert _indices(page) == [0, 1, 2, 3] and page.is_disabled("button.psp-prev")

        page.click(".psp-segmented button[data-value='incorrect']")  # a filter change
        assert page.is_disabled("button.psp-next") and page.is_disabled("button.psp-prev")
        page.select_option("select.psp-page-size", "2")
        _fetch(page)
        first = _indices(page)
        assert len(first) == 2 and page.is_disabled("button.psp-prev")
        page.click("button.psp-next")
        page.wait_for_function(
            "(last) => Number(document.querySelector('.psp-example').dataset.example) > last",
            arg=first[1],
        )
        page.click(".psp-segmented button[data-value='all']")
        _fetch(page)
        assert _indices(page) == [0, 1]  # paging restarted from the first example

        page.select_option("select.psp-method", "IntegratedGradients")  # not yet fetched
        section = page.locator(".psp-model").first
        other = section.locator(".psp-pred:not(.is-target)").first
        target = other.get_attribute("data-class")
        other.click()
        page.wait_for_selector(
            f".psp-model[data-model='0'] .psp-pred.is-target[data-class='{target}']"
        )
        assert (
            "with Saliency" in page.locator(".psp-model").first.locator(".psp-target").inner_text()
        )
        assert [p for p in page.problems if "403" not in p] == []  # only the refused first visit
    finally:
        vis.stop()


def test_cancel_stale_results_warnings_and_readable_arguments(page: Any, monkeypatch: Any) -> None:
    from perspicio.insights import engine as engine_module

    vis = _sleepy_explorer(delay=0.02)
    url = vis.serve()
    try:
        page.goto(url)
        page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
        page.select_option("select.psp-method", "Saliency")
        _fetch(page)
        assert len(_indices(page)) == 4

        # a failing fetch leaves no stale results behind
        page.route("**/api/jobs/fetch", lambda r: r.fulfill(status=500, body='{"error": "boom"}'))
        _fetch(page)
        assert page.locator(".psp-example").count() == 0
        assert page.locator(".psp-error").inner_text() == "boom"
        assert page.is_disabled("button.psp-next")
        page.unroute("**/api/jobs/fetch")

        # arguments are checked in the page, in words
        page.select_option("select.psp-method", "IntegratedGradients")
        page.fill("input[data-arg='n_steps']", "2.5")
        page.click("button.psp-fetch")
        assert page.locator(".psp-error").inner_text() == 'n_steps: "2.5" is not a whole number.'
        assert page.get_attribute("input[data-arg='n_steps']", "aria-invalid") == "true"

        # a long job: progress, then Cancel stops it on the server
        page.select_option("select.psp-method", "ShapleyValueSampling")
        page.fill("input[data-arg='n_samples']", "5000")
        page.fill("input[data-arg='perturbations_per_eval']", "1")
        monkeypatch.setattr(engine_module, "SLOW_SECONDS", 1e9)
        page.click("button.psp-fetch")
        page.wait_for_selector("button.psp-cancel:not([hidden])")
        page.wait_for_function("() => document.querySelector('.psp-progress').value > 0.05")
        page.click("button.psp-cancel")
        page.wait_for_selector(".psp-status:text-is('Cancelled.')")
        assert vis.engine.jobs.running == []

        # a job estimated to take minutes asks first
        monkeypatch.setattr(engine_module, "SLOW_SECONDS", 0.0)
        page.select_option("select.psp-method", "Saliency")
        page.click("button.psp-fetch")
        page.wait_for_selector(".psp-warning:not([hidden])")
        assert "Run it anyway" in page.locator(".psp-warning").inner_text()
        assert page.locator(".psp-example").count() == 0
        _fetch_confirmed = page.locator("button.psp-confirm")
        _fetch_confirmed.click()
        page.wait_for_selector(".psp-example >> nth=3")

        # closing the page cancels its job
        monkeypatch.setattr(engine_module, "SLOW_SECONDS", 1e9)
        page.select_option("select.psp-method", "ShapleyValueSampling")
        page.fill("input[data-arg='n_samples']", "5000")
        page.fill("input[data-arg='perturbations_per_eval']", "1")
        page.click("button.psp-fetch")
        page.wait_for_selector("button.psp-cancel:not([hidden])")
        assert vis.engine.jobs.running
        problems = list(page.problems)
        page.goto("about:blank")
        for _ in range(200):
            if not vis.engine.jobs.running:
                break
            time.sleep(0.05)
        assert vis.engine.jobs.running == []
        assert [p for p in problems if "500" not in p] == []
    finally:
        vis.stop()


def test_raw_outputs_are_drawn_relative_to_the_largest(page: Any) -> None:
    from perspicio.insights.features import GeneralFeature
    from perspicio.insights.widget import Responder, widget_class

    model = nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([4.0, -2.0, 1.0]))  # logits, not probabilities
    vis = AttributionVisualizer(
        model, ["a", "b", "c"], [GeneralFeature("x", "pqr")], [Batch(torch.rand(2, 3), None)]
    )
    responder = Responder(vis.engine, send=lambda reply: None)
    page.expose_function("pySend", responder.answer)
    page.set_content("<!doctype html><html><body><div id='cell'></div></body></html>")
    page.add_style_tag(content=str(widget_class()._css))
    page.evaluate(STAND_IN_MODEL, [str(widget_class()._esm), "900px"])
    page.wait_for_selector("select.psp-method option[value='Saliency']", state="attached")
    page.select_option("select.psp-method", "Saliency")
    page.click("button.psp-fetch")
    page.wait_for_selector(".psp-example >> nth=1")
    fills = page.locator(".psp-model").first.locator(".psp-pred-fill")
    widths = [f.evaluate("e => parseFloat(e.style.width)") for f in fills.all()]
    assert widths == [100.0, 25.0, 50.0]  # 4, 1, -2 (sorted): |score| over the largest
    assert "is-neg" in (fills.nth(2).get_attribute("class") or "")
    assert "Model outputs" in page.locator(".psp-model .psp-section-title").first.text_content()
    assert page.problems == []


def test_a_saved_result_shows_cards_filter_and_paging(page: Any, tmp_path: Path) -> None:
    from perspicio.insights import ResultViewer
    from perspicio.result import Explanation

    gen = torch.Generator().manual_seed(0)
    path = tmp_path / "result.safetensors"
    Explanation(
        values=(torch.randn(6, 4, generator=gen),),
        data=(torch.rand(6, 4, generator=gen),),
        output=torch.arange(6.0),
        feature_names=("age", "<b>income</b>", "height", "weight"),
        method="IntegratedGradients",
        arguments={"n_steps": 8},
        target=torch.tensor([0, 1, 0, 1, 1, 0]),
    ).save(path)
    viewer = ResultViewer(str(path))
    url = viewer.serve()
    try:
        page.goto(url)
        page.wait_for_selector(".psp-example >> nth=3")
        assert page.locator(".psp-example").count() == 4  # the default page size
        assert page.locator(".psp-importance .psp-crow").count() == 4
        assert page.locator("select.psp-method").is_disabled()
        assert "saved result" in page.locator(".psp-readonly-note").inner_text()
        assert "n_steps=8" in page.locator(".psp-example").first.inner_text()
        assert page.locator(".psp-example .psp-grow").count() == 16  # 4 bars per card
        assert page.locator("b").count() == 0  # names are text, never HTML
        page.click("button.psp-next")
        page.wait_for_selector(".psp-example[data-example='5']")
        assert page.locator(".psp-example").count() == 2
        page.select_option("select.psp-target-filter", "1")
        page.wait_for_selector(".psp-example[data-example='1']")
        shown = page.locator(".psp-example").evaluate_all("els => els.map(e => e.dataset.example)")
        assert shown == ["1", "3", "4"]
        page.screenshot(path=str(tmp_path / "insights-result.png"), full_page=False)
        assert page.problems == []
    finally:
        viewer.stop()
