"""The network settings of the engine stop the web app's start-up when malformed."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).parents[2] / "webapp" / "settings.py"


def test_a_malformed_allow_list_stops_the_settings_from_loading(monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", "api.internal, https://10.0.0.5")
    with pytest.raises(ImproperlyConfigured) as excinfo:
        runpy.run_path(str(SETTINGS))
    assert str(excinfo.value) == (
        "SWITCHYARD_HTTP_ALLOW_HOSTS: 'https://10.0.0.5' is not a host, address or network "
        "(no scheme or path)"
    )


def test_a_good_allow_list_loads(monkeypatch):
    monkeypatch.setenv("SWITCHYARD_HTTP_ALLOW_HOSTS", "api.internal:8443, 10.0.0.0/8")
    monkeypatch.setenv("SWITCHYARD_HTTP_NODE_ENABLED", "yes")
    assert runpy.run_path(str(SETTINGS))["DEBUG"] in (True, False)
