"""Built-in agent tools: the calculator and the SSRF-guarded http_get.

No test contacts a non-loopback address: every non-loopback URL here is refused before any
connection is attempted, and the fetch tests talk to stdlib HTTP servers on 127.0.0.1.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from graphs import net
from graphs.net import AllowList, NetError, address_problem, check_url, resolve_and_check
from graphs.tools import BUILTIN_TOOLS, Tool, ToolError, ToolSettings
from graphs.tools.calculator import Calculator, evaluate, format_number
from graphs.tools.http_get import DISABLED_MESSAGE, HttpGet
from tests.support.work import peak_bytes

ENABLED = ToolSettings(http_get_enabled=True, http_get_timeout_s=5.0, http_get_max_bytes=10_000)
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
# Memory a refused calculation may take: its parse and refusal, and no number bigger than
# the 4096-bit limit (512 bytes) on top.
NO_BIG_NUMBER = 32_000


# --------------------------------------------------------------------------- registry


def test_builtin_registry_maps_each_name_to_a_tool_with_that_name() -> None:
    assert set(BUILTIN_TOOLS) == {"calculator", "http_get"}
    for name, tool in BUILTIN_TOOLS.items():
        assert tool.name == name
        assert tool.description
        assert tool.input_schema["type"] == "object"
        assert tool.input_schema["required"]


def test_builtin_tools_satisfy_the_tool_protocol() -> None:
    tools: list[Tool] = [Calculator(), HttpGet()]
    assert [t.name for t in tools] == ["calculator", "http_get"]


# --------------------------------------------------------------------------- calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2", "3"),
        ("7 - 10", "-3"),
        ("6 * 7", "42"),
        ("2 / 4", "0.5"),
        ("10 / 2", "5.0"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("0.1 + 0.2", "0.3"),
        ("1.5e3", "1500.0"),
        ("1e20", "1e+20"),
        ("2 ** 100", "1267650600228229401496703205376"),
        ("+5", "5"),
        ("--5", "5"),
    ],
)
def test_calculator_computes_arithmetic(expression: str, expected: str) -> None:
    assert format_number(evaluate(expression)) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", 14),
        ("(2 + 3) * 4", 20),
        ("-3 ** 2", -9),
        ("(-3) ** 2", 9),
        ("2 ** 3 ** 2", 512),
        ("100 / 10 / 5", 2.0),
        ("2 * (3 + (4 - 1)) ** 2", 72),
    ],
)
def test_calculator_follows_python_precedence(expression: str, expected: float) -> None:
    assert evaluate(expression) == expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("sqrt(16)", 4.0),
        ("abs(-3)", 3),
        ("round(2.5)", 2),
        ("round(3.14159, 2)", 3.14),
        ("min(3, 1, 2)", 1),
        ("max(3, 1, 2)", 3),
        ("floor(2.7)", 2),
        ("ceil(2.1)", 3),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("log10(1000)", 3.0),
        ("exp(0)", 1.0),
        ("sin(0)", 0.0),
        ("cos(0)", 1.0),
        ("tan(0)", 0.0),
        ("round(pi, 5)", 3.14159),
    ],
)
def test_calculator_supports_whitelisted_functions_and_constants(
    expression: str, expected: float
) -> None:
    assert evaluate(expression) == pytest.approx(expected)


@pytest.mark.parametrize("expression", ["1 / 0", "1 // 0", "1 % 0", "1.0 / 0.0"])
def test_calculator_reports_division_by_zero(expression: str) -> None:
    with pytest.raises(ToolError, match="division by zero"):
        evaluate(expression)


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("__import__('os')", "not allowed: function '__import__'"),
        ("abs('os')", "not allowed: strings"),
        ("().__class__", "not allowed: attribute access"),
        ("(1).__class__", "not allowed: attribute access"),
        ("math.sqrt(4)", "not allowed: attribute access"),
        ("'a' * 10", "not allowed: strings"),
        ("[1][0]", "not allowed: subscripts"),
        ("lambda: 1", "not allowed: lambda"),
        ("[x for x in (1, 2)]", "not allowed: comprehensions"),
        ("sum(x for x in (1, 2))", "not allowed: function 'sum'"),
        ("max(x for x in (1, 2))", "not allowed: comprehensions"),
        ("factorial(1000)", "not allowed: function 'factorial'"),
        ("eval('1')", "not allowed: function 'eval'"),
        ("x + 1", "unknown name 'x'"),
        ("1j", "not allowed: complex numbers"),
        ("True + 1", "not allowed: True"),
        ("1 < 2", "not allowed: comparisons"),
        ("1 << 1000000", "not allowed: operator '<<'"),
        ("~1", "not allowed: operator '~'"),
        ("(y := 1)", "not allowed: assignment expressions"),
        ("1 if 1 else 2", "not allowed: conditional expressions"),
        ("min(1, 2, key=abs)", "does not take keyword arguments"),
        ("abs(*(1,))", "not allowed"),
        ("f'{1}'", "not allowed: strings"),
        ("import os", "invalid expression"),
    ],
)
def test_calculator_refuses_anything_but_arithmetic(expression: str, named: str) -> None:
    with pytest.raises(ToolError, match=re.escape(named)):
        evaluate(expression)


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "9**9**9**9",
        "2**4097",
        "10**1000 * 10**1000",
        "(10**1000) ** (10**1000)",
        "2.0 ** 100000",
        "10**1000 / 3",
        "exp(1000)",
        "sqrt(10**1000)",
        "1e999",
        "99999**99999",
    ],
)
def test_calculator_refuses_results_that_are_too_large_before_computing_them(
    expression: str,
) -> None:
    def refused() -> None:
        with pytest.raises(ToolError, match="too large"):
            evaluate(expression)

    # Parsing and refusing take about 13 KB; 99999**99999 alone would be 200 KB, and
    # 10**1000 ** 10**1000 would never finish.
    assert peak_bytes(refused) < NO_BIG_NUMBER


def test_calculator_refuses_round_with_unbounded_digits_before_computing() -> None:
    def refused() -> None:
        with pytest.raises(ToolError, match="digits"):
            evaluate("round(5, -10**9)")

    # round(int, -n) would compute 10**n: here a billion digits.
    assert peak_bytes(refused) < NO_BIG_NUMBER


def test_calculator_caps_expression_length_and_size() -> None:
    with pytest.raises(ToolError, match="too long"):
        evaluate("1+" * 600 + "1")
    with pytest.raises(ToolError, match="too complex"):
        evaluate("+".join(["1"] * 300))


def test_calculator_reports_math_domain_errors() -> None:
    with pytest.raises(ToolError, match="math error"):
        evaluate("sqrt(-1)")
    with pytest.raises(ToolError, match="complex"):
        evaluate("(-8) ** 0.5")


def test_calculator_keeps_large_exact_integers_within_the_cap() -> None:
    assert evaluate("2**4000") == 2**4000
    assert evaluate("(-2)**4095") == (-2) ** 4095


async def test_calculator_tool_call_returns_formatted_text() -> None:
    assert await Calculator().call({"expression": "(17 + 5) * 3 / 4"}, ToolSettings()) == "16.5"
    assert await Calculator().call({"expression": "2**64"}, ToolSettings()) == str(2**64)


async def test_calculator_tool_call_requires_an_expression_string() -> None:
    with pytest.raises(ToolError, match="expression"):
        await Calculator().call({}, ToolSettings())
    with pytest.raises(ToolError, match="expression"):
        await Calculator().call({"expression": 12}, ToolSettings())


# --------------------------------------------------------------------------- http_get: policy


async def test_http_get_is_disabled_by_default() -> None:
    with pytest.raises(ToolError) as excinfo:
        await HttpGet().call({"url": "http://127.0.0.1/"}, ToolSettings())
    assert str(excinfo.value) == DISABLED_MESSAGE
    assert "SWITCHYARD_HTTP_GET_ENABLED=1" in DISABLED_MESSAGE


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/", "refused: 127.0.0.1 is a loopback address"),
        ("http://127.0.0.1:8000/admin", "refused: 127.0.0.1 is a loopback address"),
        ("http://2130706433/", "refused: 127.0.0.1 is a loopback address"),
        ("http://0x7f.1/", "refused: 127.0.0.1 is a loopback address"),
        ("http://127.1/", "refused: 127.0.0.1 is a loopback address"),
        ("http://0/", "refused: 0.0.0.0 is an unspecified address"),
        ("http://0.0.0.0/", "refused: 0.0.0.0 is an unspecified address"),
        ("http://10.0.0.1/", "refused: 10.0.0.1 is a private address"),
        ("http://172.16.5.4/", "refused: 172.16.5.4 is a private address"),
        ("http://192.168.1.1/", "refused: 192.168.1.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://169.254.1.1/", "refused: 169.254.1.1 is a link-local address"),
        ("http://100.64.0.1/", "refused: 100.64.0.1 is a shared (CGNAT) address"),
        ("http://224.0.0.1/", "refused: 224.0.0.1 is a multicast address"),
        ("http://240.0.0.1/", "refused: 240.0.0.1 is a reserved address"),
        ("http://[::1]/", "refused: ::1 is a loopback address"),
        ("http://[::]/", "refused: :: is an unspecified address"),
        ("http://[fc00::1]/", "refused: fc00::1 is a private address"),
        ("http://[fd00:ec2::254]/", "refused: fd00:ec2::254 is a private address"),
        ("http://[fe80::1]/", "refused: fe80::1 is a link-local address"),
        ("http://[fec0::1]/", "refused: fec0::1 is a site-local address"),
        ("http://[ff02::1]/", "refused: ff02::1 is a multicast address"),
        ("http://[::ffff:127.0.0.1]/", "loopback address (it maps to 127.0.0.1)"),
        ("http://[::ffff:169.254.169.254]/", "link-local address (the cloud metadata service)"),
        ("http://[64:ff9b::a00:1]/", "private address (it maps to 10.0.0.1)"),
        ("http://[2002:c0a8:101::1]/", "private address (6to4 for 192.168.1.1)"),
        ("file:///etc/passwd", "refused: scheme 'file' is not allowed"),
        ("gopher://example.com:70/_x", "refused: scheme 'gopher' is not allowed"),
        ("ftp://example.com/", "refused: scheme 'ftp' is not allowed"),
        ("http://user:pass@example.com/", "refused: credentials in the URL"),
        ("http://user@example.com/", "refused: credentials in the URL"),
        ("example.com/path", "must start with http:// or https://"),
    ],
)
async def test_http_get_refuses_non_public_targets_naming_the_address(
    url: str, message: str
) -> None:
    with pytest.raises(NetError, match=re.escape(message)):
        check_url(url)
    # The tool itself refuses the same way, before any connection is attempted.
    with pytest.raises(ToolError, match=re.escape(message)):
        await HttpGet().call({"url": url}, ENABLED)


@pytest.mark.parametrize(
    "url", ["http://93.184.215.14/", "https://[2606:4700::1111]/x", "https://example.com:8443/a"]
)
def test_check_url_accepts_public_urls_without_touching_the_network(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("8.8.8.8", None),
        ("2606:4700::1111", None),
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::808:808", None),
        ("127.0.0.2", "a loopback address"),
        ("::7f00:1", "a reserved address"),
        ("198.18.0.1", "a private address"),
        ("2001:db8::1", "a private address"),
    ],
)
def test_address_problem_classifies_addresses(address: str, problem: str | None) -> None:
    assert address_problem(ipaddress.ip_address(address)) == problem


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1", "127.0.0.1"])
async def test_resolve_and_check_refuses_names_that_resolve_to_loopback(host: str) -> None:
    with pytest.raises(NetError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await resolve_and_check(host, 80)


async def test_resolve_and_check_refuses_if_any_resolved_address_is_private(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_getaddrinfo(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.0.0.7"]

    monkeypatch.setattr(net, "_getaddrinfo", fake_getaddrinfo)
    allow_loopback = _allow_only(port=80)
    with pytest.raises(NetError, match=r"refused: 10\.0\.0\.7 is a private address"):
        await resolve_and_check("mixed.invalid", 80, allow=allow_loopback)


async def test_resolve_and_check_returns_addresses_the_policy_allows() -> None:
    assert await resolve_and_check("localhost", 8080, allow=_allow_only(port=8080)) == ["127.0.0.1"]
    with pytest.raises(NetError, match="loopback"):
        await resolve_and_check("localhost", 8081, allow=_allow_only(port=8080))


async def test_resolve_and_check_reports_unresolvable_names() -> None:
    with pytest.raises(NetError, match=r"could not resolve 'no-such-host\.invalid'"):
        await resolve_and_check("no-such-host.invalid", 80)


async def test_https_request_is_pinned_to_the_checked_ip_with_sni_for_the_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_getaddrinfo(host: str, port: int) -> list[str]:
        assert host == "pinned.invalid"
        return ["127.0.0.1"]

    sent: list[httpx.Request] = []

    async def fake_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: object) -> None:
        sent.append(request)
        raise httpx.ConnectError("nothing listens here", request=request)

    monkeypatch.setattr(net, "_getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(httpx.AsyncClient, "send", fake_send)
    with pytest.raises(ToolError, match=r"could not connect to pinned\.invalid"):
        await HttpGet().call({"url": "https://pinned.invalid/path?q=1"}, allowing(port=443))
    [request] = sent
    assert request.url == httpx.URL("https://127.0.0.1/path?q=1")
    assert request.headers["host"] == "pinned.invalid"
    assert request.extensions["sni_hostname"] == "pinned.invalid"


# ------------------------------------------------------------------ http_get: local servers


@dataclass
class LocalServer:
    port: int
    hits: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


Route = Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def serve(routes: dict[str, Route]) -> Iterator[LocalServer]:
    """A stdlib HTTP server on 127.0.0.1 that records every path it is asked for."""
    server_ref: list[LocalServer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            server_ref[0].hits.append(self.path)
            server_ref[0].hosts.append(self.headers.get("Host", ""))
            route = routes.get(self.path.split("?")[0])
            if route is None:
                _reply(self, 404, b"not found")
            else:
                route(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server_ref.append(LocalServer(port=httpd.server_address[1]))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server_ref[0]
    finally:
        httpd.shutdown()
        httpd.server_close()


def _reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    content_type: str = "text/plain; charset=utf-8",
    location: str | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    if location is not None:
        handler.send_header("Location", location)
    handler.end_headers()
    # The timeout test's client gives up before the reply; that is the point.
    with suppress(BrokenPipeError, ConnectionResetError):
        handler.wfile.write(body)


def _redirect(location: str | Callable[[], str]) -> Route:
    def route(handler: BaseHTTPRequestHandler) -> None:
        target = location() if callable(location) else location
        _reply(handler, 302, location=target)

    return route


def _allow_only(port: int) -> AllowList:
    """Relax the policy for exactly one destination: 127.0.0.1 on `port`."""
    return AllowList.parse(f"127.0.0.1:{port}")


def allowing(port: int, **changes: object) -> ToolSettings:
    """ENABLED, with 127.0.0.1 on `port` allow-listed as a deployment would."""
    return dataclasses.replace(ENABLED, http_allow=_allow_only(port), **changes)  # type: ignore[arg-type]


# /slow answers once a test lets it (or after half a minute).
slow_may_answer = threading.Event()


def _slow(handler: BaseHTTPRequestHandler) -> None:
    slow_may_answer.wait(timeout=30)
    _reply(handler, 200, b"late")


@pytest.fixture
def internal() -> Iterator[LocalServer]:
    """Stands for an internal service the model must never reach."""
    with serve({"/secret": lambda h: _reply(h, 200, b"internal secret")}) as server:
        yield server


@pytest.fixture
def site(internal: LocalServer) -> Iterator[LocalServer]:
    """Stands for a public site; the tests allow exactly this server's port."""
    routes: dict[str, Route] = {
        "/hello": lambda h: _reply(h, 200, "héllo, world".encode()),
        "/big": lambda h: _reply(h, 200, b"x" * 5000),
        "/latin1": lambda h: _reply(h, 200, b"caf\xe9", "text/plain; charset=latin-1"),
        "/teapot": lambda h: _reply(h, 418, b"short and stout"),
        "/slow": _slow,
        "/to-hello": _redirect("/hello"),
        "/to-internal": _redirect(lambda: f"http://127.0.0.1:{internal.port}/secret"),
        "/to-internal-by-name": _redirect(lambda: f"http://localhost:{internal.port}/secret"),
        "/to-metadata": _redirect("http://169.254.169.254/latest/meta-data/"),
        "/to-file": _redirect("file:///etc/passwd"),
        "/loop": _redirect("/loop"),
    }
    with serve(routes) as server:
        yield server


async def _get(server: LocalServer, path: str, **changes: object) -> str:
    """http_get through the tool, with `server` allow-listed."""
    return await HttpGet().call({"url": server.url(path)}, allowing(server.port, **changes))


async def test_http_get_fetches_a_page_from_an_allowed_server(site: LocalServer) -> None:
    result = await _get(site, "/hello")
    assert result.splitlines()[0] == "HTTP 200 OK"
    assert "content-type: text/plain; charset=utf-8" in result
    assert result.endswith("héllo, world")
    assert "truncated" not in result
    assert site.hosts == [f"127.0.0.1:{site.port}"]


async def test_http_get_decodes_with_the_declared_charset(site: LocalServer) -> None:
    result = await _get(site, "/latin1")
    assert result.endswith("café")


async def test_http_get_returns_error_statuses_as_text(site: LocalServer) -> None:
    result = await _get(site, "/teapot")
    assert result.startswith("HTTP 418")
    assert result.endswith("short and stout")


async def test_http_get_truncates_the_body_at_max_bytes(site: LocalServer) -> None:
    result = await _get(site, "/big", http_get_max_bytes=1000)
    body = result.split("\n\n", 1)[1]
    assert body.startswith("x" * 1000 + "\n")
    assert "x" * 1001 not in result
    assert "[truncated: the body is longer than 1000 bytes]" in result


async def test_http_get_does_not_mark_a_body_of_exactly_max_bytes_truncated(
    site: LocalServer,
) -> None:
    result = await _get(site, "/big", http_get_max_bytes=5000)
    assert result.endswith("x" * 5000)
    assert "truncated" not in result


async def test_http_get_follows_a_redirect_to_an_allowed_target(site: LocalServer) -> None:
    result = await _get(site, "/to-hello")
    assert result.startswith("HTTP 200 OK")
    assert f"url: {site.url('/hello')}" in result
    assert site.hits == ["/to-hello", "/hello"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/to-internal", r"refused: 127\.0\.0\.1 is a loopback address"),
        ("/to-internal-by-name", r"refused: 127\.0\.0\.1 is a loopback address"),
        ("/to-metadata", r"refused: 169\.254\.169\.254 is a link-local address"),
        ("/to-file", "refused: scheme 'file' is not allowed"),
    ],
)
async def test_http_get_refuses_a_redirect_into_a_non_public_target(
    site: LocalServer, internal: LocalServer, path: str, message: str
) -> None:
    with pytest.raises(ToolError, match=message):
        await _get(site, path)
    assert site.hits == [path]  # the first hop was permitted and answered
    assert internal.hits == []  # the second hop never happened


async def test_http_get_stops_after_too_many_redirects(site: LocalServer) -> None:
    with pytest.raises(ToolError, match="too many redirects"):
        await _get(site, "/loop")
    assert site.hits == ["/loop"] * 6


async def test_http_get_connects_to_the_checked_address_and_sends_the_original_host(
    site: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ".invalid" never resolves, so success proves nothing looked the name up a second time.
    async def fake_getaddrinfo(host: str, port: int) -> list[str]:
        assert host == "rebind.invalid"
        return ["127.0.0.1"]

    monkeypatch.setattr(net, "_getaddrinfo", fake_getaddrinfo)
    url = f"http://rebind.invalid:{site.port}/hello"
    result = await HttpGet().call({"url": url}, allowing(site.port))
    assert result.startswith("HTTP 200 OK")
    assert site.hosts == [f"rebind.invalid:{site.port}"]


async def test_http_get_refuses_the_local_server_without_an_explicit_exception(
    site: LocalServer,
) -> None:
    with pytest.raises(ToolError, match=r"refused: 127\.0\.0\.1 is a loopback address"):
        await BUILTIN_TOOLS["http_get"].call({"url": site.url("/hello")}, ENABLED)
    assert site.hits == []


async def test_http_get_enforces_the_total_timeout(site: LocalServer) -> None:
    slow_may_answer.clear()
    try:
        # The server has not answered when the tool gives up: it answers only after.
        with pytest.raises(ToolError, match=r"timed out after 0\.2s"):
            await _get(site, "/slow", http_get_timeout_s=0.2)
    finally:
        slow_may_answer.set()


async def test_http_get_requires_a_url_string() -> None:
    with pytest.raises(ToolError, match="missing 'url'"):
        await HttpGet().call({}, ENABLED)
