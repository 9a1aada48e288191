"""Pytest fixtures for the fake Anthropic server.

Import them into a conftest (``from tests.fakes.fixtures import anthropic_env, fake_anthropic``)
or list this module in ``pytest_plugins``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.fakes.anthropic_server import FakeAnthropic


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A running fake Messages API on 127.0.0.1, stopped after the test."""
    with FakeAnthropic() as server:
        yield server


@pytest.fixture
def anthropic_env(
    fake_anthropic: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeAnthropic]:
    """The fake server, with the environment set so ``anthropic.AsyncAnthropic()`` uses it."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    # A developer's own token or profile must not leak into (or warn during) tests.
    for name in ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)
    # A configured HTTP proxy would otherwise swallow loopback traffic.
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)
    yield fake_anthropic
