"""The JupyterLab settings the project ships (``make lab`` and the browser tests use them): every
setting exists in the installed JupyterLab's schemas with an allowed value, and ``make lab`` points
JupyterLab at them; and the browser tests' rule when no Chromium is found."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import LAB_SETTINGS, REPO_ROOT

SCHEMAS = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"


def _schema(plugin: str) -> dict:
    package, name = plugin.split(":")
    return json.loads((SCHEMAS / package / f"{name}.json").read_text())


def test_shipped_settings_are_real_jupyterlab_settings():
    overrides = json.loads((LAB_SETTINGS / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert overrides["@jupyterlab/notebook-extension:tracker"]["autoStartDefaultKernel"] is True
    for plugin, settings in overrides.items():
        properties = _schema(plugin)["properties"]
        for key, value in settings.items():
            assert key in properties, (plugin, key)
            allowed = [option["const"] for option in properties[key].get("oneOf", [])]
            assert not allowed or value in allowed, (plugin, key, value)
            assert isinstance(value, {"boolean": bool, "string": str}[properties[key]["type"]])


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_opens_the_notebooks_with_the_shipped_settings():
    dry = subprocess.run(["make", "-n", "lab"], cwd=REPO_ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert f"jupyter lab notebooks/ --LabApp.app_settings_dir={LAB_SETTINGS}" in dry


def test_without_chromium_browser_tests_skip_locally_and_fail_under_ci(monkeypatch, tmp_path):
    import browser

    monkeypatch.setattr(browser, "CHROMIUM_CANDIDATES", (str(tmp_path / "no-chromium"),))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv(browser.CHROMIUM_ENV, raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no Chromium found"):
        browser.chromium_path()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="cannot run under CI: no Chromium"):
        browser.chromium_path()
