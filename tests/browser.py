"""Browser fixtures: real headless Chromium (Debian's, or CHROMIUM_PATH) driven by
Playwright, against the app served by pytest-django's ``live_server`` on the test
database. Screenshots of every step go to ``test-artifacts/e2e/`` (gitignored).

The fixtures are registered once, in ``tests/conftest.py``: there must be exactly one
session-wide Playwright (its sync API owns this thread's event loop), so test modules
use the fixtures by name and never import them."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests
# make to set up data and check results are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    path = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    return shutil.which(path)


@pytest.fixture(scope="session")
def browser() -> Iterator:
    path = chromium_path()
    if path is None:
        pytest.skip(
            f"Chromium not found at {os.environ.get('CHROMIUM_PATH') or '/usr/bin/chromium'} "
            "(set CHROMIUM_PATH or install Debian's chromium): browser tests skipped"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Shots:
    """Numbered full-page screenshots of one test's steps."""

    def __init__(self, page, name: str, *, full_page: bool = True):
        self.page, self.n, self.full_page = page, 0, full_page
        self.dir = ARTIFACTS / re.sub(r"[^\w-]+", "_", name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, step: str, *, full_page: bool | None = None) -> Path:
        full_page = self.full_page if full_page is None else full_page
        self.n += 1
        slug = re.sub(r"[^\w-]+", "-", step)
        path = self.dir / f"{self.n:02d}-{slug}.png"
        if full_page:  # from the top, so the sticky header is where it belongs
            self.page.evaluate("window.scrollTo(0, 0)")
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


def _new_page(browser, live_server, request, **context_args):
    context = browser.new_context(base_url=live_server.url, accept_downloads=True, locale="en-GB", **context_args)
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # Everything the store needs is served by the store: fail on any other request.
    outside: list[str] = []

    def guard(route):
        url = route.request.url
        if url.startswith(live_server.url) or url.startswith("data:"):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", guard)
    return context, page, errors, outside


@pytest.fixture
def page(browser, live_server, request, transactional_db):
    context, page, errors, outside = _new_page(browser, live_server, request, viewport={"width": 1280, "height": 900})
    page.shots = Shots(page, request.node.name)
    yield page
    context.close()
    assert not outside, f"the page tried to reach the network: {outside}"
    assert not errors, f"browser console errors: {errors}"


@pytest.fixture
def phone_page(browser, live_server, request, transactional_db):
    context, page, errors, outside = _new_page(
        browser,
        live_server,
        request,
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page.shots = Shots(page, request.node.name, full_page=False)  # what the phone's screen shows
    yield page
    context.close()
    assert not outside, f"the page tried to reach the network: {outside}"
    assert not errors, f"browser console errors: {errors}"


# WCAG 2 contrast of every visible text on a plain background (texts over images or
# gradients are skipped: their backgrounds cannot be read from styles).
_CONTRAST_JS = r"""
() => {
  const parse = c => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null;
    const p = m[1].split(/[ ,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; };
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); };
  const bad = [], seen = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode, el = text.parentElement;
    if (!text.textContent.trim() || seen.has(el)) continue;
    seen.add(el);
    if (el.closest('[aria-hidden="true"], .disabled, svg')) continue;
    const st = getComputedStyle(el), box = el.getBoundingClientRect();
    if (st.visibility === 'hidden' || box.width < 2 || box.height < 2) continue;
    let node = el, bg = null, image = false;
    while (node) { const s = getComputedStyle(node);
      if (s.backgroundImage !== 'none') { image = true; break; }
      const c = parse(s.backgroundColor); if (c && c.a > 0.9) { bg = c; break; }
      node = node.parentElement; }
    if (image) continue;
    bg = bg || {r: 255, g: 255, b: 255};
    const fg = parse(st.color); if (!fg) continue;
    const l1 = lum(fg), l2 = lum(bg), ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize), bold = parseInt(st.fontWeight) >= 700;
    const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
    if (ratio < need - 0.01) bad.push(`${el.tagName}.${el.className} "${text.textContent.trim().slice(0, 40)}" ${ratio.toFixed(2)} < ${need}`);
  }
  return bad;
}
"""


def assert_contrast(page) -> None:
    """Fail if a visible text is below WCAG AA contrast on its background."""
    bad = page.evaluate(_CONTRAST_JS)
    assert not bad, f"{page.url}: texts below WCAG AA contrast: {bad}"


# Records every Content-Security-Policy violation of a page in window.__csp.
CSP_WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""
STAFF_EMAIL = "ops@affinity.example"
STAFF_PASSWORD = "x-pass-123456"


@pytest.fixture
def staff_page(browser, live_server, transactional_db, client):
    """A superuser's page (admin and store) in the session's Chromium, logged in through
    the session cookie. CSP violations are recorded in ``window.__csp``; a JavaScript
    error or a console error on any page fails the test at teardown."""
    from django.db import connections

    from shop.models import User

    # the live server answers each request in a new thread: close its connection at the
    # end of the request, so none is left open when the test database is flushed
    settings_dict = connections["default"].settings_dict
    max_age = settings_dict.get("CONN_MAX_AGE")
    settings_dict["CONN_MAX_AGE"] = 0
    staff = User.objects.create_superuser(email=STAFF_EMAIL, password=STAFF_PASSWORD)
    client.force_login(staff)
    context = browser.new_context(base_url=live_server.url)
    host = live_server.url.split("//", 1)[1].split(":")[0]
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "domain": host, "path": "/"}]
    )
    context.set_default_timeout(20_000)
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield page
    finally:
        page.goto("about:blank")  # stop polling pages before the server and the database go
        context.close()
        connections.close_all()
        settings_dict["CONN_MAX_AGE"] = max_age
    assert not errors, errors
