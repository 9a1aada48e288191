"""The guarded client's allow-list (``SWITCHYARD_HTTP_ALLOW_HOSTS``), for the ``http_get``
tool and the ``http`` node alike. The address policy itself is tested through the tool in
``test_tools.py`` and through the node in ``test_http_node.py``."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from graphs.net import AllowList
from graphs.settings import SettingsError, services_from_env
from graphs.tools import ToolError, ToolSettings
from graphs.tools.http_get import HttpGet
from tests.support.http_server import Reply, Server, redirect, serve


@pytest.mark.parametrize(
    ("entries", "host", "ip", "port", "permitted"),
    [
        ("api.internal", "api.internal", "10.0.0.5", 443, True),
        ("api.internal", "API.Internal.", "10.0.0.5", 80, True),
        ("api.internal", "other.internal", "10.0.0.5", 443, False),
        ("api.internal:8443", "api.internal", "10.0.0.5", 443, False),
        ("10.0.0.5", "anything", "10.0.0.5", 1, True),
        ("10.0.0.5:9000", "anything", "10.0.0.5", 9001, False),
        ("10.1.0.0/16", "x", "10.1.200.3", 80, True),
        ("10.1.0.0/16", "x", "10.2.0.1", 80, False),
        ("[::1]:9000", "x", "::1", 9000, True),
        ("fd00::/8", "x", "fd12::1", 80, True),
        ("", "api.internal", "10.0.0.5", 443, False),
    ],
)
def test_an_allow_list_permits_what_it_names(
    entries: str, host: str, ip: str, port: int, permitted: bool
) -> None:
    allow = AllowList.parse(entries)
    assert allow.permits(host, ipaddress.ip_address(ip), port) is permitted


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("http://api.internal", "not a host, address or network (no scheme or path)"),
        ("api.internal/v1", "not a host, address or network (no scheme or path)"),
        ("a,,b", "an entry is empty"),
        ("a,", "an entry is empty"),
        ("api.internal:0", "invalid port '0'"),
        ("api.internal:http", "invalid port 'http'"),
        ("10.0.0.0/33", "is not a network"),
        ("10.0.0.1/8", "is not a network"),  # host bits set: a typo of 10.0.0.0/8?
        ("bad host", "not a host, address or network"),
        ("[::1", "not a host, address or network"),
    ],
)
def test_a_malformed_allow_list_fails_loudly_naming_the_setting(entries: str, message: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        services_from_env({"SWITCHYARD_HTTP_ALLOW_HOSTS": entries})
    assert str(excinfo.value).startswith("SWITCHYARD_HTTP_ALLOW_HOSTS: ")
    assert message in str(excinfo.value)


def test_the_environment_sets_the_network_settings() -> None:
    settings = services_from_env(
        {
            "SWITCHYARD_HTTP_NODE_ENABLED": "1",
            "SWITCHYARD_HTTP_ALLOW_HOSTS": "api.internal:8443",
            "SWITCHYARD_HTTP_TIMEOUT_S": "5",
            "SWITCHYARD_HTTP_MAX_REQUEST_BYTES": "10",
            "SWITCHYARD_HTTP_MAX_RESPONSE_BYTES": "20",
        }
    ).tool_settings
    assert settings.http_node_enabled and not settings.http_get_enabled
    assert settings.http_allow.permits("api.internal", None, 8443)
    assert (settings.http_timeout_s, settings.http_max_request_bytes) == (5.0, 10)
    assert settings.http_max_response_bytes == 20
    # One switch each: a flow's author chooses the node's URL, a model the tool's.
    assert services_from_env({}).tool_settings == ToolSettings()


@pytest.fixture
def internal() -> Iterator[Server]:
    with serve({"/secret": lambda s: Reply(200, b"internal secret")}) as server:
        yield server


@pytest.fixture
def site(internal: Server) -> Iterator[Server]:
    with serve({"/to-internal": lambda s: redirect(internal.url("/secret"))}) as server:
        yield server


def tool_settings(*servers: Server) -> ToolSettings:
    allow = AllowList.parse(",".join(f"127.0.0.1:{s.port}" for s in servers))
    return ToolSettings(http_get_enabled=True, http_allow=allow)


async def test_the_tool_follows_a_redirect_only_into_an_allow_listed_host(
    site: Server, internal: Server
) -> None:
    url = site.url("/to-internal")
    with pytest.raises(ToolError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await HttpGet().call({"url": url}, tool_settings(site))
    assert internal.seen == []
    result = await HttpGet().call({"url": url}, tool_settings(site, internal))
    assert result.startswith("HTTP 200 OK")
    assert result.endswith("internal secret")
    assert internal.paths == ["/secret"]
