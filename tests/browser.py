"""What the browser tests share: finding Chromium, a Playwright browser that may not reach the
network, screenshots, and a JupyterLab server in a throw-away home.

Chromium is Debian's package (``apt-get install chromium``; ``.ci/run`` installs it), driven by
Playwright from PyPI; Playwright's own browser download is never used. Without Chromium or
Playwright the tests skip with the reason, except under CI (``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LAB_SETTINGS = REPO_ROOT / "jupyterlab-settings"
"""The JupyterLab settings the project ships (``make lab`` uses the same folder)."""
SCREENSHOT_DIR = REPO_ROOT / "tests" / "screenshots"
"""Where every screenshot goes (git-ignored), so a failure can be looked at."""
DOCS_ENV = "BERTNLI_SCREENSHOTS"
"""Set to a folder (``docs``) to also write the README's screenshots there."""
CHROMIUM_ENV = "BERTNLI_CHROMIUM"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-quic", "--disable-dev-shm-usage"]
LOCAL_SCHEMES = ("data:", "blob:", "about:", "file:")


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where the browser tests must run."""
    if os.environ.get("CI"):
        pytest.fail(f"browser tests cannot run under CI: {reason}")
    pytest.skip(reason)


def chromium_path() -> str:
    """The Chromium to drive: $BERTNLI_CHROMIUM, else Debian's, else one on PATH."""
    candidates = [os.environ.get(CHROMIUM_ENV, ""), *CHROMIUM_CANDIDATES,
                  shutil.which("chromium") or "", shutil.which("chromium-browser") or ""]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    _unavailable("no Chromium found (apt-get install chromium, or set "
                 f"{CHROMIUM_ENV} to a Chromium or Chrome executable)")
    raise AssertionError("unreachable")


@dataclass
class Traffic:
    """Every request a page made, and those that left the machine (blocked)."""

    allowed_hosts: tuple[str, ...] = ("127.0.0.1",)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        if url.startswith(LOCAL_SCHEMES):
            return True
        host = url.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0]
        return host in self.allowed_hosts

    def route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        if self.is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("internetdisconnected")


@contextlib.contextmanager
def browser_context(profile_dir: Path, traffic: Traffic | None = None,
                    viewport: dict[str, int] | None = None) -> Iterator[Any]:
    """A fresh headless Chromium profile; with ``traffic``, every request that is not to
    127.0.0.1 (or a file, data or blob URL) is recorded and aborted: the network is blocked."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport=viewport or {"width": 1280, "height": 900},
        )
        try:
            if traffic is not None:
                context.route("**/*", traffic.route)
                context.on("request", lambda request: _note_unrouted(traffic, request.url))
            yield context
        finally:
            context.close()


def _note_unrouted(traffic: Traffic, url: str) -> None:
    """Requests routing does not see (file URLs, service workers) are still checked."""
    if not traffic.is_local(url) and url not in traffic.blocked:
        traffic.blocked.append(url)


def screenshot(page: Any, name: str, *, docs: bool = False, **options: Any) -> Path:
    """Save a screenshot under tests/screenshots/ (and under $BERTNLI_SCREENSHOTS when
    ``docs``: the README's pictures, re-made by the tests)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), **options)
    target = os.environ.get(DOCS_ENV)
    if docs and target:
        folder = Path(target) if Path(target).is_absolute() else REPO_ROOT / target
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, folder / path.name)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LabServer:
    """A JupyterLab server on 127.0.0.1 with a token, a private home, and the project's settings."""

    root: Path
    home: Path
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """Settings, workspaces, config and runtime files in ``home``: nothing of the user's."""
        env = dict(os.environ)
        for name, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"),
                          ("JUPYTERLAB_SETTINGS_DIR", "user-settings"),
                          ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")):
            env[name] = str(self.home / sub)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                          env.get("PYTHONPATH", "")]))
        return env

    def start(self, timeout: float = 90.0) -> LabServer:
        log = (self.home / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             f"--LabApp.app_settings_dir={LAB_SETTINGS}", "--LabApp.expose_app_in_browser=True",
             "--ServerApp.open_browser=False",
             *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
            env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited: {self.log()[-2000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"{self.url}/api/status?token={self.token}", timeout=2) as response:
                if response.status == 200:
                    return self
            time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer in {timeout:.0f} s: {self.log()[-2000:]}")

    def stop(self) -> None:
        """Stop the server (and with it its kernels), whatever state it is in."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        path = self.home / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
