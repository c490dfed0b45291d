"""The SSRF guard: which webhook URLs may be called, and that the request goes to the address it checked."""

from ipaddress import ip_address

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from broker.errors import InvalidRequest
from broker.webhooks.ssrf import AllowList, UnsafeTarget, check_url, choose_address, parse_url, require_safe_url
from simulator.serving import ThreadedServer

NOBODY = AllowList.parse([])

NON_PUBLIC = [
    "10.0.0.1", "172.16.5.4", "192.168.1.1",  # RFC 1918
    "127.0.0.1", "127.8.9.10", "0.0.0.0",  # loopback, unspecified
    "169.254.169.254",  # link-local: cloud metadata
    "100.64.0.1", "100.127.255.254",  # CGNAT shared space
    "224.0.0.1", "239.255.255.250",  # multicast (is_global is True for some of it)
    "240.0.0.1", "255.255.255.255", "192.0.2.1", "198.18.0.1",  # reserved, documentation, benchmarking
    "[::1]", "[::]", "[fc00::1]", "[fd12:3456::1]", "[fe80::1]", "[ff02::1]", "[fec0::1]", "[2001:db8::1]",
    "[::ffff:10.0.0.1]", "[::ffff:127.0.0.1]",  # IPv4-mapped
    "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
    "[2002:a00:1::1]",  # 6to4 of 10.0.0.1
]


@pytest.mark.parametrize("host", NON_PUBLIC)
def test_non_public_addresses_are_refused(host: str) -> None:
    with pytest.raises(UnsafeTarget, match="address"):
        check_url(f"http://{host}/hook", NOBODY)


@pytest.mark.parametrize("url", ["http://2130706433/hook", "http://0x7f.1/hook", "http://localhost/hook"])
def test_names_and_odd_forms_are_judged_by_what_they_resolve_to(url: str) -> None:
    with pytest.raises(UnsafeTarget, match="loopback"):
        check_url(url, NOBODY)


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/x", "gopher://example.com/", "javascript:alert(1)", "http:///path",
    "http://" + "a" * 2100 + ".com/",
])
def test_only_http_and_https_urls_with_a_host(url: str) -> None:
    with pytest.raises(UnsafeTarget):
        check_url(url, NOBODY)


def test_unresolvable_host_is_refused() -> None:
    with pytest.raises(UnsafeTarget, match="could not be resolved"):
        check_url("https://no-such-host.invalid/hook", NOBODY)


def test_public_addresses_pass_and_the_url_points_at_the_checked_address() -> None:
    target = check_url("https://8.8.8.8:8443/hook?x=1", NOBODY)
    assert target.address == ip_address("8.8.8.8")
    assert str(target.url) == "https://8.8.8.8:8443/hook?x=1"
    v6 = check_url("http://[2606:4700:4700::1111]/h", NOBODY)
    assert v6.address == ip_address("2606:4700:4700::1111") and v6.url.host == "2606:4700:4700::1111"


def test_every_resolved_address_must_be_public() -> None:
    parsed = parse_url("https://hooks.example.com/in")
    with pytest.raises(UnsafeTarget, match="10.0.0.7, a private address"):
        choose_address(parsed, [ip_address("93.184.216.34"), ip_address("10.0.0.7")], NOBODY)
    target = choose_address(parsed, [ip_address("93.184.216.34"), ip_address("2606:2800:220:1::1")], NOBODY)
    assert target.url.host == "93.184.216.34"
    assert target.headers == {"Host": "hooks.example.com"}
    assert target.extensions == {"sni_hostname": "hooks.example.com"}  # TLS checks the name, not the IP


def test_allow_list_takes_addresses_networks_and_host_names() -> None:
    allow = AllowList.parse(["127.0.0.1", "10.0.0.0/8", "[::1]", "Internal.Example."])
    assert check_url("http://127.0.0.1:9000/h", allow).address == ip_address("127.0.0.1")
    assert check_url("http://10.200.3.4/h", allow).address == ip_address("10.200.3.4")
    assert check_url("http://[::1]/h", allow).address == ip_address("::1")
    for refused in ("http://127.0.0.2/h", "http://192.168.0.1/h", "http://169.254.169.254/"):
        with pytest.raises(UnsafeTarget):
            check_url(refused, allow)
    parsed = parse_url("http://internal.example/h")
    assert choose_address(parsed, [ip_address("192.168.7.7")], allow).address == ip_address("192.168.7.7")


def test_api_form_is_a_400_naming_the_parameter() -> None:
    with pytest.raises(InvalidRequest) as info:
        require_safe_url("http://169.254.169.254/latest/meta-data", [], param="webhook_url")
    assert info.value.status_code == 400 and info.value.param == "webhook_url"
    assert "link-local" in info.value.message
    require_safe_url("http://127.0.0.1:1/h", ["127.0.0.1"], param="url")  # allow-listed: no error


async def _echo(request: Request) -> JSONResponse:
    client = request.client
    return JSONResponse({"host": request.headers.get("host"), "peer": client.host if client else None})


def test_request_goes_to_the_checked_address_with_the_original_host_header() -> None:
    """Resolution happens once, in the check; the connection uses its answer, not a second DNS lookup."""
    with ThreadedServer(Starlette(routes=[Route("/echo", _echo)]), name="echo") as server:
        port = server.port
        parsed = parse_url(f"http://hooks.example.com:{port}/echo")
        target = choose_address(parsed, [ip_address("127.0.0.1")], AllowList.parse(["127.0.0.1"]))
        with httpx.Client(trust_env=False) as client:
            response = client.get(target.url, headers=target.headers, extensions=target.extensions)
    assert response.json() == {"host": f"hooks.example.com:{port}", "peer": "127.0.0.1"}
