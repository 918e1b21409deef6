"""The course site as a reader without a network sees it: ``index.html`` and every notebook page
of a tiny-profile course run, opened in headless Chromium with every request that would leave
127.0.0.1 blocked (and recorded): no widget output is empty, every figure loads, nothing is
fetched from outside, and no script fails."""

from __future__ import annotations

import re

import pytest

from browser import Traffic, browser_context, screenshot
from conftest import LocalServer

# The timeout covers the shared tiny course run when this test is the first to ask for it.
pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(1800)]

# Output areas that held a widget: each must show something once the widget manager ran.
WIDGET_OUTPUTS = """() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .filter(o => o.querySelector('script[type="application/vnd.jupyter.widget-view+json"]'))
  .map(o => ({text: o.innerText.trim().slice(0, 80),
              height: o.getBoundingClientRect().height,
              rendered: o.querySelector('.jupyter-widgets') !== null}))"""
BARS = "() => [...document.querySelectorAll('.progress-bar')].map(b => b.style.width)"
FIGURES = """() => [...document.images].map(i => ({src: i.src.slice(0, 40),
  loaded: i.complete && i.naturalWidth > 0}))"""


@pytest.fixture
def site(tiny_course):
    out, summary = tiny_course
    server = LocalServer(out)
    try:
        yield out, summary, server
    finally:
        server.close()


def _open(page, url: str) -> None:
    page.goto(url)
    page.wait_for_load_state("load")
    page.wait_for_function(  # the widget manager renders on load
        f"() => ({WIDGET_OUTPUTS})().every(o => o.rendered)", timeout=30_000)


def test_the_course_site_works_offline(site, tmp_path):
    out, summary, server = site
    traffic = Traffic()
    errors: list[str] = []
    with browser_context(tmp_path / "chromium", traffic,
                         viewport={"width": 1100, "height": 700}) as context:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(server.url("index.html"))
        links = [a.get_attribute("href") for a in page.locator("#summary a[href$='.html']").all()]
        assert links == [f"{row['notebook']}.html" for row in summary]
        assert page.locator("#profile").text_content() == "tiny"
        for row in summary:
            line = page.locator(f"tr[data-notebook='{row['notebook']}']").text_content() or ""
            assert all(key in line for key in row["key numbers"]), line
        screenshot(page, "course-home", docs=True)

        widget_pages = 0
        for link in links:
            _open(page, server.url(link))
            widgets = page.evaluate(WIDGET_OUTPUTS)
            empty = [w for w in widgets if not w["text"] or w["height"] < 5]
            assert not empty, (link, empty)
            widget_pages += bool(widgets)
            bars = page.evaluate(BARS)
            assert "0%" not in bars, (link, bars)  # progress bars in their final state
            figures = page.evaluate(FIGURES)
            assert all(f["loaded"] for f in figures), (link, figures)
            screenshot(page, f"site-{link.removesuffix('.html')}", full_page=True)
        assert widget_pages >= 3, "notebooks 1, 3 and 5 at least show widgets"

        page.goto((out / "index.html").as_uri())  # the file opened directly works the same
        page.locator("#summary a[href$='.html']").nth(2).click()
        page.wait_for_load_state("load")
        assert re.search(r"03_truncation\.html$", page.url)
        _open(page, page.url)
        assert all(w["text"] for w in page.evaluate(WIDGET_OUTPUTS))
    assert not traffic.blocked, f"requests left the machine: {traffic.blocked[:5]}"
    assert not errors, errors
