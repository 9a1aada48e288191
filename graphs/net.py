"""The one HTTP client that reaches beyond the server: guarded against SSRF.

Both the ``http_get`` agent tool (a model chooses the URL) and the ``http`` node (a flow's
author writes it, often from a template over inputs) go through ``request``, so neither
can reach anything a public client could not: loopback, private and link-local networks
(including the cloud metadata address 169.254.169.254), CGNAT, multicast, reserved ranges,
and IPv6 spellings of all of them -- unless the deployment lists the host in its
allow-list (``AllowList``, ``SWITCHYARD_HTTP_ALLOW_HOSTS``).

How the guard holds:

* The URL is parsed once, by httpx -- the same parser that builds the request -- so there is
  no parser differential between what is checked and what is sent.
* The host is resolved once and *every* address is checked; a name with one public and one
  private address is refused, since we cannot know which one a later lookup would pick.
* The connection goes to the exact address that was checked: the request URL's host is
  replaced by that IP, and the original name travels in the Host header and, for https, in the
  ``sni_hostname`` request extension, which httpcore uses both for SNI and for certificate
  hostname verification. No second DNS lookup happens, so DNS rebinding cannot swap the target.
* Redirects are followed by hand and every hop goes through the same checks; credentials
  (``Authorization``, ``Cookie``) are not carried to another origin.
* Proxy environment variables are ignored (``trust_env=False``): a proxy would resolve the
  name itself, out of our sight.
* Bodies are capped both ways; compressed responses are not asked for, since they would be
  inflated before the cap applies.

>>> check_url("http://10.0.0.1/")
Traceback (most recent call last):
...
graphs.net.NetError: refused: 10.0.0.1 is a private address
>>> check_url("http://10.0.0.1/", allow=AllowList.parse("10.0.0.0/8"))
>>> AllowList.parse("api.internal:8443, 127.0.0.1:9000").permits("API.internal", None, 8443)
True
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    # Imported where a URL is parsed or sent, not here: httpx takes longer to load than the
    # rest of the engine, and most flows never make a request (the command line's start-up).
    import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_REDIRECTS = 5
MAX_URL_CHARS = 8192

_DEFAULT_PORTS = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_METADATA_ADDRESS = ipaddress.IPv4Address("169.254.169.254")
# Spelled out: is_private never covers it and is_global has not always excluded it.
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
# What must not follow a redirect to another origin: it was meant for the first one.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


class NetError(Exception):
    """The request was refused or failed; the message says why, naming the address."""


class NetTimeout(NetError):
    """The whole request (lookups, every hop, the body) took longer than its budget."""


class Unreachable(NetError):
    """No connection, or it broke: worth another try later, unlike a refusal."""


class TooLarge(NetError):
    """A body was larger than its cap."""


@dataclass(frozen=True)
class AllowList:
    """Destinations a deployment trusts although the policy would refuse them.

    Entries: a host name (``api.internal``: matched against the URL's host, and then any
    address it resolves to is allowed), an address (``10.0.0.5``) or a network
    (``10.0.0.0/8``: matched against the resolved address), each with an optional port
    (``api.internal:8443``, ``127.0.0.1:9000``, ``[::1]:9000``; not on a network).
    ``parse`` refuses anything else, so a typo fails loudly instead of allowing nothing.

    >>> allow = AllowList.parse("127.0.0.1:9000")
    >>> allow.permits("localhost", ipaddress.ip_address("127.0.0.1"), 9000)
    True
    >>> allow.permits("localhost", ipaddress.ip_address("127.0.0.1"), 9001)
    False
    >>> AllowList.parse("http://api.internal/")
    Traceback (most recent call last):
    ...
    ValueError: 'http://api.internal/' is not a host, address or network (no scheme or path)
    """

    names: tuple[tuple[str, int | None], ...] = ()
    addresses: tuple[tuple[IPNetwork, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> AllowList:
        names: list[tuple[str, int | None]] = []
        addresses: list[tuple[IPNetwork, int | None]] = []
        if not text.strip():
            return cls()
        for raw in text.split(","):
            entry = raw.strip()
            if not entry:
                raise ValueError("an entry is empty (two commas, or a trailing comma)")
            if "://" in entry or ("/" in entry and not _looks_like_network(entry)):
                raise ValueError(f"{entry!r} is not a host, address or network (no scheme or path)")
            if "/" in entry:
                try:
                    addresses.append((ipaddress.ip_network(entry, strict=True), None))
                except ValueError as exc:
                    raise ValueError(f"{entry!r} is not a network: {exc}") from None
                continue
            host, port = _split_port(entry)
            try:
                addresses.append((ipaddress.ip_network(host), port))
                continue
            except ValueError:
                pass
            if not _HOST_NAME.match(host) or host.replace(".", "").isdigit():
                raise ValueError(f"{entry!r} is not a host, address or network (no scheme or path)")
            names.append((host.lower().rstrip("."), port))
        return cls(tuple(names), tuple(addresses))

    def permits(self, host: str, ip: IPAddress | None, port: int) -> bool:
        """Whether the URL host ``host`` (resolved to ``ip``) on ``port`` is trusted."""
        name = host.lower().rstrip(".")
        for allowed, allowed_port in self.names:
            if allowed == name and allowed_port in (None, port):
                return True
        if ip is None:
            return False
        return any(
            ip in network and allowed_port in (None, port)
            for network, allowed_port in self.addresses
        )

    def __bool__(self) -> bool:
        return bool(self.names or self.addresses)


def _looks_like_network(entry: str) -> bool:
    address, _, bits = entry.partition("/")
    return bits.isdigit() and _literal_address(address) is not None


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{entry!r} is not a host, address or network")
        port_text = rest[1:] if rest else None
    elif entry.count(":") == 1:
        host, port_text = entry.split(":")
    else:
        host, port_text = entry, None  # a bare IPv6 address, or no port
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"{entry!r} has an invalid port {port_text!r}")
    return host, int(port_text)


NO_ALLOW_LIST = AllowList()


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


def _check_address(host: str, ip: IPAddress, port: int, allow: AllowList) -> None:
    if allow.permits(host, ip, port):
        return
    problem = address_problem(ip)
    if problem is not None:
        raise NetError(f"refused: {ip} is {problem}")


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


def _parse(url: str | httpx.URL, allow: AllowList | None) -> httpx.URL:
    """The URL, checked; ``allow=None`` checks its shape only, not its address."""
    import httpx

    shown = str(url)
    if len(shown) > MAX_URL_CHARS:
        raise NetError(f"URL is too long (max {MAX_URL_CHARS} characters)")
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        if not parsed.scheme:
            raise NetError(f"invalid URL {shown!r}: it must start with http:// or https://")
        if parsed.scheme not in _DEFAULT_PORTS:
            raise NetError(
                f"refused: scheme {parsed.scheme!r} is not allowed (only http and https)"
            )
        if parsed.userinfo:
            raise NetError("refused: credentials in the URL (user:password@) are not allowed")
        if not parsed.raw_host:
            raise NetError(f"invalid URL {shown!r}: no host")
        port = _port(parsed)
        if not 0 < port <= 65535:
            raise NetError(f"invalid URL {shown!r}: port {port} is out of range")
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise NetError(f"invalid URL {shown!r}: {exc}") from None
    host = parsed.raw_host.decode("ascii")
    literal = _literal_address(host)
    if literal is not None and allow is not None:
        _check_address(host, literal, port, allow)
    return parsed


def check_url(url: str, *, allow: AllowList = NO_ALLOW_LIST) -> None:
    """The checks that need no network: scheme, userinfo, and numeric hosts. Raises NetError."""
    _parse(url, allow)


def check_url_shape(url: str) -> None:
    """``check_url`` without the address: for a URL the running server's allow-list may permit.

    >>> check_url_shape("ftp://example.com/")
    Traceback (most recent call last):
    ...
    graphs.net.NetError: refused: scheme 'ftp' is not allowed (only http and https)
    """
    _parse(url, None)


def destination(url: str, *, allow: AllowList = NO_ALLOW_LIST) -> tuple[str, int]:
    """``check_url``, returning the host and port the URL names (for a client of its own
    that resolves and pins them with ``resolve_and_check``, as ``graphs.tools.mcp``'s).

    >>> destination("https://Example.com/mcp")
    ('example.com', 443)
    """
    parsed = _parse(url, allow)
    return parsed.raw_host.decode("ascii"), _port(parsed)


async def _getaddrinfo(host: str, port: int) -> list[str]:
    # Imported in the coroutines that use it (a running loop has loaded it already): the
    # settings this module defines (AllowList) are read by processes that run nothing.
    import asyncio

    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [
        str(sockaddr[0])
        for family, _, _, _, sockaddr in infos
        if family in (socket.AF_INET, socket.AF_INET6)
    ]


async def resolve_and_check(host: str, port: int, *, allow: AllowList = NO_ALLOW_LIST) -> list[str]:
    """Resolve `host` and return its addresses; NetError if any of them is not allowed."""
    try:
        found = await _getaddrinfo(host, port)
    except (socket.gaierror, UnicodeError) as exc:
        raise NetError(f"could not resolve {host!r}: {exc}") from None
    addresses: list[str] = []
    for text in found:
        ip = ipaddress.ip_address(text)
        _check_address(host, ip, port, allow)
        if str(ip) not in addresses:
            addresses.append(str(ip))
    if not addresses:
        raise NetError(f"could not resolve {host!r}: no IPv4 or IPv6 address")
    return addresses


@dataclass(frozen=True)
class Response:
    """What came back from the last hop. ``headers`` keep their order and repeats."""

    status: int
    reason: str
    url: str
    headers: tuple[tuple[str, str], ...]
    content: bytes
    charset: str | None = None
    truncated: bool = False
    redirected: bool = False

    def header(self, name: str) -> str | None:
        """The header's values joined by ", " (as HTTP allows), or None."""
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None

    def text(self) -> str:
        try:
            return self.content.decode(self.charset or "utf-8", errors="replace")
        except LookupError:
            return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Limits:
    """How long a request may take and how big its bodies may be.

    ``oversize``: a response body past ``max_response_bytes`` is cut there (``truncate``, for
    a model that reads what it gets) or refused (``fail``, for a value a flow parses).
    """

    timeout_s: float = 10.0
    max_request_bytes: int = 1_000_000
    max_response_bytes: int = 1_000_000
    oversize: Literal["truncate", "fail"] = "truncate"
    user_agent: str = "Switchyard"


async def request(
    method: str,
    url: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    params: Sequence[tuple[str, str]] = (),
    content: bytes | None = None,
    allow: AllowList = NO_ALLOW_LIST,
    limits: Limits | None = None,
    private: Collection[str] = (),
) -> Response:
    """Send one request under the SSRF policy, following redirects; raises NetError.

    ``private``: names of headers that, like ``Authorization``, are dropped when a redirect
    leads to another origin (a credential's API key header, its custom headers)."""
    import asyncio

    import httpx

    limits = limits or Limits()
    if content is not None and len(content) > limits.max_request_bytes:
        raise TooLarge(
            f"the request body is {len(content)} bytes, over the "
            f"{limits.max_request_bytes}-byte limit"
        )
    try:
        # One deadline for the whole call: lookups, every redirect hop and the body.
        async with asyncio.timeout(limits.timeout_s):
            return await _request(method, url, headers, params, content, allow, limits, private)
    except (TimeoutError, httpx.TimeoutException):
        raise NetTimeout(f"timed out after {limits.timeout_s:g}s") from None
    except httpx.HTTPError as exc:
        raise Unreachable(f"request failed: {type(exc).__name__}: {exc}") from None


async def _request(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]],
    params: Sequence[tuple[str, str]],
    content: bytes | None,
    allow: AllowList,
    limits: Limits,
    private: Collection[str] = (),
) -> Response:
    import httpx

    dropped = _CREDENTIAL_HEADERS | {name.lower() for name in private}
    current = _parse(url, allow)
    if params:
        try:
            current = _parse(current.copy_merge_params(list(params)), allow)
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise NetError(f"invalid query: {exc}") from None
    sent = list(headers)
    async with httpx.AsyncClient(
        trust_env=False, follow_redirects=False, timeout=limits.timeout_s
    ) as client:
        for hop in range(MAX_REDIRECTS + 1):
            response = await _send(client, method, current, sent, content, allow, limits)
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECT_STATUSES and location:
                    try:
                        target = current.join(location)
                    except (httpx.InvalidURL, ValueError) as exc:
                        raise NetError(f"invalid redirect location {location!r}: {exc}") from None
                    following = _parse(target, allow)
                    if _origin(following) != _origin(current):
                        sent = [(k, v) for k, v in sent if k.lower() not in dropped]
                    # As browsers do: 303, and 301/302 after a POST, continue as a GET.
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method == "POST"
                    ):
                        if method != "HEAD":
                            method = "GET"
                        content = None
                        sent = [(k, v) for k, v in sent if k.lower() != "content-type"]
                    current = following
                    continue
                return await _read(response, current, redirected=hop > 0, limits=limits)
            finally:
                await response.aclose()
    raise NetError(f"too many redirects (more than {MAX_REDIRECTS})")


def _origin(url: httpx.URL) -> tuple[str, bytes, int]:
    return url.scheme, url.raw_host.lower(), _port(url)


async def _send(
    client: httpx.AsyncClient,
    method: str,
    url: httpx.URL,
    headers: list[tuple[str, str]],
    content: bytes | None,
    allow: AllowList,
    limits: Limits,
) -> httpx.Response:
    import httpx

    host = url.raw_host.decode("ascii")
    addresses = await resolve_and_check(host, _port(url), allow=allow)
    sent = httpx.Headers(
        {
            "User-Agent": limits.user_agent,
            # Compressed bodies would be inflated before the size cap applies.
            "Accept-Encoding": "identity",
        }
    )
    for name, value in headers:
        sent[name] = value
    # After the caller's: the pinned connection is only right for this name.
    sent["Host"] = url.netloc.decode("ascii")
    extensions = {"sni_hostname": host} if url.scheme == "https" else {}
    failure: httpx.ConnectError | None = None
    for address in addresses:
        try:
            request = client.build_request(
                method,
                url.copy_with(host=address),
                headers=sent,
                content=content,
                extensions=extensions,
            )
        except (httpx.InvalidURL, ValueError, TypeError) as exc:
            raise NetError(f"invalid request: {exc}") from None
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError as exc:
            failure = exc
    raise Unreachable(f"could not connect to {host}: {failure}")


async def _read(
    response: httpx.Response, url: httpx.URL, *, redirected: bool, limits: Limits
) -> Response:
    cap = limits.max_response_bytes
    declared = response.headers.get("content-length", "")
    if limits.oversize == "fail" and declared.isdigit() and int(declared) > cap:
        raise TooLarge(f"the response body is {declared} bytes, over the {cap}-byte limit")
    chunks: list[bytes] = []
    size = 0
    truncated = False
    async for chunk in response.aiter_bytes():
        room = cap - size
        if len(chunk) > room:
            if limits.oversize == "fail":
                raise TooLarge(f"the response body is over the {cap}-byte limit")
            chunks.append(chunk[:room])
            truncated = True
            break
        chunks.append(chunk)
        size += len(chunk)
    return Response(
        status=response.status_code,
        reason=response.reason_phrase,
        url=str(url),
        headers=tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in response.headers.raw),
        content=b"".join(chunks),
        charset=response.charset_encoding,
        truncated=truncated,
        redirected=redirected,
    )


def header_dict(response: Response) -> dict[str, str]:
    """The response's headers by lower-case name, repeats joined by ", "."""
    joined: dict[str, str] = {}
    for name, value in response.headers:
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def is_json(headers: Mapping[str, str]) -> bool:
    """Whether a Content-Type says JSON (``application/json``, ``application/problem+json``).

    >>> is_json({"content-type": "application/vnd.api+json; charset=utf-8"})
    True
    >>> is_json({"content-type": "text/html"})
    False
    """
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json":
        return True
    return media.startswith("application/") and media.endswith("+json")
