"""Run as a centre would (issue 19): two nodes behind nginx at one URL, in real Chromium.

Two ``python -m server run`` processes on PostgreSQL and Redis share one ``STORAGE_DIR``, each
with a ``DATA_DIR`` of its own; node A's media is in a media worker process (``MEDIA_WORKERS=1``),
node B's in the node itself. In front of them, Debian's nginx runs as an unprivileged process on
a loopback port with the repository's own ``deploy/nginx/lifeline.conf``, its placeholders
filled in as envsubst would: TLS, the two nodes as its upstream, websockets on /socket.io/.

Every browser goes through nginx. Which node a browser reaches is pinned by a cookie
(``lifeline_node=a`` or ``b``): the test's nginx.conf wraps the repository's file and sends
pinned requests to a one-node upstream, unpinned ones to the balanced upstream; pages and their
sockets keep one origin, the URL the nodes are told is theirs. The citizen is on node A, the
operator's console on node B: the call, its chat, its location and its media cross between the
nodes over Redis. The caller's photo is uploaded to A and shown at the console from B; the
snapshot is stored by B; the recording is written by A's worker; then each is fetched through
nginx from either node, and nginx's own access log says which upstream answered each request.

In the embedded test run the nodes get a PostgreSQL database (``lifeline_two_nodes``) and a
Redis database (12) of their own; in the scale-out run, the run's own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import av
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, BrowserContext, expect

from config import Settings
from server.core.outages import Outages
from signaling.server import create_sio
from tests import stores
from tests.browser import test_live_call as live
from tests.browser.conftest import RunningServer, call_media, start_server, stop_server
from tests.browser.staff import add_staff, sign_in

pytestmark = pytest.mark.browser

NGINX = "/usr/sbin/nginx"
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "lifeline.conf"
PLACEHOLDER = re.compile(r"\$\{(LIFELINE_[A-Z_]+)\}")
PIN_COOKIE = "lifeline_node"
# The embedded run's own stores: nothing another test uses.
EMBEDDED_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
EMBEDDED_DATABASE = "lifeline_two_nodes"
EMBEDDED_REDIS_URL = "redis://127.0.0.1:6379/12"
PSEUDONYM_KEY = "two-nodes-test-key-0123456789abcdef"
NOBODY = 65534
START_TIMEOUT_SECS = 30.0
VIDEO = "[data-testid=remote-video]"
# Each request nginx passed on: the pin, the request, its status, and the node that answered.
ACCESS_LOG_FORMAT = "'$cookie_lifeline_node $request_method $uri $status $upstream_addr'"


@dataclass
class Centre:
    base: str  # the one URL: nginx
    nodes: dict[str, RunningServer]  # "a", "b"
    ports: dict[str, int]
    storage_dir: Path
    access_log: Path
    nginx: subprocess.Popen[bytes] | None = None

    def served(self) -> list[tuple[str, str, str, int, str]]:
        """(pin, method, path, status, node) of every request nginx has logged so far."""
        by_port = {f"127.0.0.1:{port}": name for name, port in self.ports.items()}
        lines = []
        for line in self.access_log.read_text().splitlines():
            pin, method, path, status, upstream = line.split(" ", 4)
            lines.append((pin, method, path, int(status), by_port.get(upstream, upstream)))
        return lines


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def render(template: str, values: dict[str, str]) -> str:
    """The template's ${LIFELINE_...} names filled in, as envsubst limited to them does; a
    name the test does not know fails here."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def _pinned(rendered: str, ports: dict[str, int], directory: Path) -> str:
    """The test's nginx.conf: the repository's file inside an http block of its own, whose
    upstream choice follows the pin cookie (no cookie: the repository's balanced upstream)."""
    balanced = "proxy_pass http://lifeline_nodes;"
    assert rendered.count(balanced) == 2, "the template's two locations changed"
    site = rendered.replace(balanced, "proxy_pass http://$lifeline_pinned;")
    (directory / "lifeline.conf").write_text(site)
    temp = "\n".join(
        f"    {name}_temp_path {directory / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    upstreams = "\n".join(
        f"    upstream lifeline_node_{name} {{ server 127.0.0.1:{port}; keepalive 8; }}"
        for name, port in ports.items()
    )
    return f"""worker_processes 1;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} info;
events {{ worker_connections 512; }}
http {{
    log_format upstreams {ACCESS_LOG_FORMAT};
    access_log {directory / "access.log"} upstreams;
{temp}
    map $cookie_{PIN_COOKIE} $lifeline_pinned {{
        default lifeline_nodes;
        a lifeline_node_a;
        b lifeline_node_b;
    }}
{upstreams}
    include {directory / "lifeline.conf"};
}}
"""


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _embedded_database(create: bool) -> str:
    """Drop (and create) the embedded run's own database; its URL."""

    async def run() -> None:
        conn = await asyncpg.connect(EMBEDDED_SERVER_URL)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {EMBEDDED_DATABASE} WITH (FORCE)")
            if create:
                await conn.execute(f"CREATE DATABASE {EMBEDDED_DATABASE}")
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{EMBEDDED_DATABASE}"


def fetch(
    url: str, *, pin: str = "", method: str = "GET", data: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request to nginx (its certificate is the test's own), pinned to a node or not."""
    request = urllib.request.Request(url, data=data, method=method)
    if pin:
        request.add_header("Cookie", f"{PIN_COOKIE}={pin}")
    unverified = ssl.create_default_context()
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(request, context=unverified, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), refused.read()


def _start_nginx(directory: Path, conf: str) -> subprocess.Popen[bytes]:
    (directory / "nginx.conf").write_text(conf)
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / name).mkdir()
    # Never as root: as the test's own user, or as nobody when the tests run as root.
    as_root = os.geteuid() == 0
    if as_root:
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, NOBODY, NOBODY)
    args = [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"]
    drop: dict[str, Any] = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_root else {}
    checked = subprocess.run(
        [*args, "-t"], capture_output=True, text=True, timeout=30, check=False, **drop
    )
    assert checked.returncode == 0, checked.stderr
    with (directory / "stderr.log").open("wb") as errors:  # the child keeps its own copy
        return subprocess.Popen(
            [*args, "-g", "daemon off;"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            **drop,
        )


def _wait_ready(centre: Centre) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while True:
        try:
            if all(fetch(f"{centre.base}/readyz", pin=n)[0] == 200 for n in centre.nodes):
                return
        except OSError:
            pass
        assert centre.nginx is not None and centre.nginx.poll() is None, "nginx stopped"
        assert time.monotonic() < deadline, "the centre did not become ready through nginx"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def centre(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Centre]:
    if not Path(NGINX).exists():
        pytest.fail("Debian's nginx is required: apt-get install nginx")
    if stores.SCALE_OUT:
        stores.reset_postgres_schema()
        database_url, redis_url = stores.DATABASE_URL, stores.REDIS_URL
    else:
        database_url, redis_url = _embedded_database(create=True), EMBEDDED_REDIS_URL
    stores.flush_redis(redis_url)
    root = tmp_path_factory.mktemp("centre")
    storage_dir = root / "shared-storage"
    # nginx's own directory, outside pytest's (whose parents are private to the test's user).
    proxy_dir = Path(tempfile.mkdtemp(prefix="lifeline-nginx-"))
    ports = {"a": _free_port(), "b": _free_port()}
    proxy_port = _free_port()
    base = f"https://127.0.0.1:{proxy_port}"
    common = {
        "LIFELINE_DATABASE_URL": database_url,
        "LIFELINE_REDIS_URL": redis_url,
        "LIFELINE_STORAGE_DIR": str(storage_dir),
        "LIFELINE_PUBLIC_URL": base,
        "LIFELINE_TRUSTED_PROXIES": "127.0.0.1/32",
        "LIFELINE_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "LIFELINE_CALL_RATE_LIMIT": "100/minute",
        "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
    }
    nodes: dict[str, RunningServer] = {}
    centre = Centre(base, nodes, ports, storage_dir, proxy_dir / "access.log")
    try:
        # One after the other: the first migrates the database, the second finds it current.
        for name, workers in (("a", "1"), ("b", "0")):
            nodes[name] = start_server(
                root / f"node-{name}",
                {**common, "LIFELINE_NODE_ID": f"node-{name}", "LIFELINE_MEDIA_WORKERS": workers},
                port=ports[name],
                fresh_stores=False,
            )
        cert, key = _self_signed(proxy_dir)
        site = render(
            TEMPLATE.read_text(),
            {
                "LIFELINE_LISTEN": f"127.0.0.1:{proxy_port}",
                "LIFELINE_SERVER_NAME": "127.0.0.1",
                "LIFELINE_TLS_CERTIFICATE": str(cert),
                "LIFELINE_TLS_CERTIFICATE_KEY": str(key),
                "LIFELINE_MAX_UPLOAD_BYTES": str(Settings().MAX_UPLOAD_BYTES),
                "LIFELINE_NODES": " ".join(f"server 127.0.0.1:{port};" for port in ports.values()),
            },
        )
        centre.nginx = _start_nginx(proxy_dir, _pinned(site, ports, proxy_dir))
        _wait_ready(centre)
        yield centre
    finally:
        if centre.nginx is not None:
            centre.nginx.terminate()
            centre.nginx.wait(timeout=15)
        for server in nodes.values():
            stop_server(server)
        shutil.rmtree(proxy_dir, ignore_errors=True)
        if not stores.SCALE_OUT:
            _embedded_database(create=False)


@pytest.fixture(scope="module", autouse=True)
def _centre_before_browser(centre: Centre) -> None:
    """The nodes first: their stores are prepared with ``asyncio.run()``, which fails once
    sync Playwright's event loop runs in this thread."""


def _context(browser: Browser, centre: Centre, pin: str, **options: Any) -> BrowserContext:
    context = browser.new_context(ignore_https_errors=True, **options)
    context.set_default_timeout(live.TIMEOUT_MS)
    context.add_init_script(live.RECORD_PEERS_JS)
    context.add_cookies([{"name": PIN_COOKIE, "value": pin, "url": centre.base}])
    return context


def _pin(context: BrowserContext, centre: Centre, pin: str) -> None:
    context.add_cookies([{"name": PIN_COOKIE, "value": pin, "url": centre.base}])


def _media_nodes(centre: Centre, pin: str = "") -> list[str]:
    status, _headers, body = fetch(f"{centre.base}/readyz", pin=pin)
    assert status == 200, body
    nodes: list[str] = json.loads(body)["media_nodes"]
    return nodes


def test_the_one_url_balances_and_pins_each_node(centre: Centre) -> None:
    """Unpinned requests go round both nodes; a pinned one reaches its node only (/readyz
    names the node's own media nodes: A's worker, B itself)."""
    deadline = time.monotonic() + START_TIMEOUT_SECS
    while _media_nodes(centre, "b") != ["node-b"]:  # B's hub joins the bus once it listens
        assert time.monotonic() < deadline, _media_nodes(centre, "b")
        time.sleep(0.2)
    assert _media_nodes(centre, "a") == ["node-a.m1"]
    seen = {tuple(_media_nodes(centre)) for _ in range(4)}
    assert seen == {("node-a.m1",), ("node-b",)}


def test_a_body_over_the_upload_limit_gets_the_nodes_own_answer(centre: Centre) -> None:
    """nginx takes what the nodes take (MAX_UPLOAD_BYTES), and refuses more as a node would."""
    limit = Settings().MAX_UPLOAD_BYTES
    status, headers, body = fetch(
        f"{centre.base}/api/calls/x/photos", method="POST", data=b"x" * (limit + 1)
    )
    assert status == 413
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "body_too_large"
    # At the limit it reaches a node, which asks for the call's token.
    status, _headers, body = fetch(
        f"{centre.base}/api/calls/x/photos", method="POST", data=b"x" * limit
    )
    assert status == 401, body


def test_the_proxy_outwaits_engineio_pings() -> None:
    """nginx must not close a quiet websocket before Engine.IO itself would (ping interval plus
    ping timeout): the node decides when a page is gone."""
    sio = create_sio(Settings(), Outages())
    allowed = sio.eio.ping_interval + sio.eio.ping_timeout
    sockets = TEMPLATE.read_text().split("location /socket.io/", 1)[1].split("}", 1)[0]
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive} (\d+)s;", sockets)
        assert match, f"no {directive} on /socket.io/"
        assert int(match.group(1)) > allowed, (directive, allowed)
    assert "proxy_buffering off;" in sockets
    assert "proxy_set_header Upgrade $http_upgrade;" in sockets


def _fetch_in(context: BrowserContext, url: str) -> tuple[int, dict[str, str], bytes]:
    """A request with the context's cookies (its staff session and its pin)."""
    response = context.request.get(url)
    return response.status, response.headers, response.body()


def test_a_call_through_the_balancer_is_answered_on_the_other_node(
    browser: Browser, centre: Centre, artifacts: Path, page_errors: list[str], tmp_path: Path
) -> None:
    from PIL import Image

    node_a, node_b = centre.nodes["a"], centre.nodes["b"]
    secret = add_staff(node_b, "op1", "operator")
    desk = _context(browser, centre, "b", viewport=live.CONSOLE_SCREEN, permissions=["microphone"])
    phone = _context(
        browser,
        centre,
        "a",
        viewport=live.PHONE,
        is_mobile=True,
        has_touch=True,
        permissions=["camera", "microphone", "geolocation"],
        geolocation=live.WARSAW,
    )
    phone.on("weberror", lambda error: page_errors.append(f"citizen: {error.error}"))
    try:
        console = desk.new_page()
        console.on("pageerror", lambda error: page_errors.append(f"console: {error}"))
        sign_in(console, centre.base, "op1", secret, "/console")
        expect(console.locator("body")).to_have_attribute("data-ready", "true")
        expect(console.get_by_test_id("connection-state")).to_have_attribute(
            "data-state", "connected"
        )
        console.get_by_test_id("start-shift").click()
        expect(console.get_by_test_id("shift-state")).to_have_attribute("data-state", "on")

        # The call is made through nginx on node A and answered on node B.
        citizen, call_id = live.start_call(phone, centre.base)
        live.accept(console, call_id)
        expect(citizen.get_by_test_id("call-state")).to_have_attribute("data-state", "answered")
        live.chat(citizen, "Smoke in the stairwell")
        expect(console.get_by_test_id("chat-log")).to_contain_text("Smoke in the stairwell")
        live.chat(console, "Leave by the other stairs")
        expect(citizen.get_by_test_id("chat-log")).to_contain_text("Leave by the other stairs")
        live.expect_located(console)

        # The caller's video at the console: from A's media worker, subscribed to from B.
        live.expect_rising(console, "framesDecoded", VIDEO)
        console.wait_for_function("(s) => document.querySelector(s).videoWidth > 0", arg=VIDEO)
        live.expect_rising(citizen, "audioPackets")
        assert call_media(node_a, call_id)["media_node"] == "node-a.m1"

        # A photo sent to A is shown at the console by B, read from the shared storage.
        picture = tmp_path / "stairwell.jpg"
        Image.new("RGB", (400, 300), (90, 90, 90)).save(picture, "JPEG")
        citizen.get_by_test_id("photo-input").set_input_files(str(picture))
        photo = console.get_by_test_id("chat-log").locator("[data-testid=chat-photo]")
        expect(photo).to_have_count(1)
        console.wait_for_function(
            "() => document.querySelector('[data-testid=chat-photo]').naturalWidth === 400"
        )
        photo_url = centre.base + (photo.get_attribute("src") or "")
        console.get_by_test_id("take-snapshot").click()
        snapshot = console.get_by_test_id("snapshots").locator("li.snapshot")
        expect(snapshot).to_have_count(1)
        snapshot_sha = snapshot.get_attribute("data-sha256")
        snapshot_url = centre.base + (snapshot.locator("img").get_attribute("src") or "")
        console.screenshot(path=str(artifacts / "two-nodes-console-1920.png"))
        live.end_from_console(console, citizen)
        citizen.close()
        phone.close()

        # The recording, written by A's worker under the shared storage.
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while not (rows := call_media(node_b, call_id)["recordings"]):
            assert time.monotonic() < deadline, "no recording segment stored"
            time.sleep(0.2)
        first = rows[0]
        assert first["media_node"] == "node-a.m1"
        assert first["key"] == f"recordings/{call_id}/segment-0001.mkv"
        assert Path(first["path"]) == centre.storage_dir / first["key"]
        with av.open(first["path"]) as container:
            assert {"video", "audio"} <= {stream.type for stream in container.streams}

        # Each file through nginx from either node, byte for byte; and nothing of it on the
        # nodes' own disks: each node's DATA_DIR is taken away first.
        for server in centre.nodes.values():
            shutil.rmtree(server.env["LIFELINE_DATA_DIR"])
        photo_bytes = picture.read_bytes()
        files = [
            (photo_url, hashlib.sha256(photo_bytes).hexdigest()),
            (snapshot_url, snapshot_sha),
            (f"{centre.base}/api/calls/{call_id}/recordings/1", first["sha256"]),
        ]
        for pin in ("a", "b"):
            _pin(desk, centre, pin)
            for url, sha256 in files:
                status, headers, body = _fetch_in(desk, url)
                assert status == 200, (pin, url, body[:200])
                assert hashlib.sha256(body).hexdigest() == sha256 == headers["x-content-sha256"]
    finally:
        for context in (desk, phone):
            context.close()

    # nginx's log: each pinned request (websockets included) reached its pin's node only,
    # the photo went up to A and came back from B, and the files came from both.
    time.sleep(0.5)  # a websocket is logged when it closes
    served = centre.served()
    assert all(node == pin for pin, *_rest, node in served if pin in ("a", "b")), served
    sockets = {(pin, node) for pin, _m, path, status, node in served if status == 101}
    assert {("a", "a"), ("b", "b")} <= sockets, served
    assert ("a", "POST", f"/api/calls/{call_id}/photos", 201, "a") in served
    recording = f"/api/calls/{call_id}/recordings/1"
    assert {node for _p, _m, path, status, node in served if path == recording} == {"a", "b"}
