"""The http_get tool: fetch one URL for the model, guarded against SSRF.

The model chooses the URL, so it must not be able to reach anything a public client could not:
loopback, private and link-local networks (including the cloud metadata address
169.254.169.254), CGNAT, multicast, reserved ranges, and IPv6 spellings of all of them.

How the guard holds:

* The URL is parsed once, by httpx -- the same parser that builds the request -- so there is
  no parser differential between what is checked and what is sent.
* The host is resolved once and *every* address is checked; a name with one public and one
  private address is refused, since we cannot know which one a later lookup would pick.
* The connection goes to the exact address that was checked: the request URL's host is
  replaced by that IP, and the original name travels in the Host header and, for https, in the
  ``sni_hostname`` request extension, which httpcore uses both for SNI and for certificate
  hostname verification. No second DNS lookup happens, so DNS rebinding cannot swap the target.
* Redirects are followed by hand and every hop goes through the same checks.
* Proxy environment variables are ignored (``trust_env=False``): a proxy would resolve the
  name itself, out of our sight.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

import httpx

from graphs.tools.base import ToolError, ToolSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# An explicit exception to the address policy: allow(ip, port) -> True permits that one
# destination. Production code passes none; tests use it to reach a server on 127.0.0.1.
AllowPredicate = Callable[[IPAddress, int], bool]

MAX_REDIRECTS = 5
MAX_URL_CHARS = 8192
DISABLED_MESSAGE = "http_get is disabled; set SWITCHYARD_HTTP_GET_ENABLED=1 to allow it"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")
# Spelled out: is_private never covers it and is_global has not always excluded it.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def address_problem(ip: IPAddress) -> str | None:
    """Why `ip` must not be contacted (e.g. "a loopback address"), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        # IPv6 addresses that carry an IPv4 destination are judged by that destination.
        mapped = ip.ipv4_mapped or _nat64_embedded(ip)
        if mapped is not None:
            problem = address_problem(mapped)
            return f"{problem} (it maps to {mapped})" if problem else None
        if ip.sixtofour is not None:
            problem = address_problem(ip.sixtofour)
            if problem:
                return f"{problem} (6to4 for {ip.sixtofour})"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        if ip == _METADATA_ADDRESS:
            return "a link-local address (the cloud metadata service)"
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


def _nat64_embedded(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _check_address(ip: IPAddress, port: int, allow: AllowPredicate | None) -> None:
    if allow is not None and allow(ip, port):
        return
    problem = address_problem(ip)
    if problem is not None:
        raise ToolError(f"refused: {ip} is {problem}")


def _literal_address(host: str) -> IPAddress | None:
    """The address a numeric host denotes, including legacy forms like 2130706433 or 0x7f.1."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    # The resolver accepts inet_aton's decimal/octal/hex/short forms; mirror it so they are
    # refused before any lookup (resolve_and_check would catch them too).
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _port(url: httpx.URL) -> int:
    return url.port or _DEFAULT_PORTS[url.scheme]


def _parse(url: str, allow: AllowPredicate | None = None) -> httpx.URL:
    if len(url) > MAX_URL_CHARS:
        raise ToolError(f"URL is too long (max {MAX_URL_CHARS} characters)")
    try:
        parsed = httpx.URL(url)
        if not parsed.scheme:
            raise ToolError(f"invalid URL {url!r}: it must start with http:// or https://")
        if parsed.scheme not in _DEFAULT_PORTS:
            raise ToolError(
                f"refused: scheme {parsed.scheme!r} is not allowed (only http and https)"
            )
        if parsed.userinfo:
            raise ToolError("refused: credentials in the URL (user:password@) are not allowed")
        if not parsed.raw_host:
            raise ToolError(f"invalid URL {url!r}: no host")
        port = _port(parsed)
        if not 0 < port <= 65535:
            raise ToolError(f"invalid URL {url!r}: port {port} is out of range")
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ToolError(f"invalid URL {url!r}: {exc}") from None
    literal = _literal_address(parsed.raw_host.decode("ascii"))
    if literal is not None:
        _check_address(literal, port, allow)
    return parsed


def check_url(url: str, *, allow: AllowPredicate | None = None) -> None:
    """The checks that need no network: scheme, userinfo, and numeric hosts. Raises ToolError."""
    _parse(url, allow)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [
        str(sockaddr[0])
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


async def resolve_and_check(
    host: str, port: int, *, allow: AllowPredicate | None = None
) -> list[str]:
    """Resolve `host` and return its addresses; ToolError if any of them is not public."""
    try:
        found = await _getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise ToolError(f"could not resolve {host!r}: {exc}") from None
    addresses: list[str] = []
    for text in found:
        ip = ipaddress.ip_address(text)
        _check_address(ip, port, allow)
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise ToolError(f"could not resolve {host!r}: no IPv4 or IPv6 address")
    return addresses


async def fetch(url: str, settings: ToolSettings, *, allow: AllowPredicate | None = None) -> str:
    """GET `url` under the SSRF policy and return status, content type and (capped) body text."""
    try:
        # One deadline for the whole call: lookups, every redirect hop and the body.
        async with asyncio.timeout(settings.http_get_timeout_s):
            return await _fetch(url, settings, allow)
    except TimeoutError:
        raise ToolError(f"timed out after {settings.http_get_timeout_s:g}s") from None
    except httpx.TimeoutException:
        raise ToolError(f"timed out after {settings.http_get_timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise ToolError(f"request failed: {type(exc).__name__}: {exc}") from None


async def _fetch(url: str, settings: ToolSettings, allow: AllowPredicate | None) -> str:
    current = _parse(url, allow)
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=settings.http_get_timeout_s
    ) as client:
        for hop in range(MAX_REDIRECTS + 1):
            response = await _send(client, current, allow)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    try:
                        target = str(current.join(location))
                    except (httpx.InvalidURL, ValueError) as exc:
                        raise ToolError(f"invalid redirect location {location!r}: {exc}") from None
                    current = _parse(target, allow)
                    continue
                return await _render(
                    response, current, redirected=hop > 0, max_bytes=settings.http_get_max_bytes
                )
            finally:
                await response.aclose()
    raise ToolError(f"too many redirects (more than {MAX_REDIRECTS})")


async def _send(
    client: httpx.AsyncClient, url: httpx.URL, allow: AllowPredicate | None
) -> httpx.Response:
    host = url.raw_host.decode("ascii")
    addresses = await resolve_and_check(host, _port(url), allow=allow)
    headers = {
        "Host": url.netloc.decode("ascii"),
        # Compressed bodies would be inflated before the size cap applies.
        "Accept-Encoding": "identity",
        "User-Agent": "Switchyard-http_get",
    }
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        request = client.build_request(
            "GET", url.copy_with(host=address), headers=headers, extensions=extensions
        )
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
    raise ToolError(f"could not connect to {host}: {failure}")


async def _render(
    response: httpx.Response, url: httpx.URL, *, redirected: bool, max_bytes: int
) -> str:
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.aiter_bytes():
        room = max_bytes - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    try:
        text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    lines = [f"HTTP {response.status_code} {response.reason_phrase}".rstrip()]
    if redirected:
        lines.append(f"url: {url}")
    lines.append(f"content-type: {response.headers.get('content-type', '(none)')}")
    lines.append("")
    lines.append(text)
    if truncated:
        lines.append(f"\n[truncated: the body is longer than {max_bytes} bytes]")
    return "\n".join(lines)


class HttpGet:
    """Built-in tool: GET a public http(s) URL. Off unless settings.http_get_enabled."""

    name: str = "http_get"
    # The page may change between two fetches of the same URL.
    deterministic: bool = False
    description: str = (
        "Fetch a public web page or API endpoint with an HTTP GET request and return the "
        "status line, content type and the body as text (long bodies are truncated). Only "
        "http:// and https:// URLs on the public internet are allowed; private, local and "
        "cloud-metadata addresses are refused."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "description": "The absolute http:// or https:// URL to fetch.",
            }
        },
        "required": ["url"],
    }

    def __init__(self, *, allow: AllowPredicate | None = None) -> None:
        self._allow = allow

    async def call(self, args: dict[str, Any], settings: ToolSettings) -> str:
        if not settings.http_get_enabled:
            raise ToolError(DISABLED_MESSAGE)
        url = args.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ToolError("missing 'url' (a string)")
        return await fetch(url.strip(), settings, allow=self._allow)
