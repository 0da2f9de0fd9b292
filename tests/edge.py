"""A centre as it runs: Debian's nginx, with the repository's own configuration, in front of
several ``python -m server run`` nodes at one URL (issue 19).

The nodes share PostgreSQL, Redis and one ``STORAGE_DIR``; each has a ``DATA_DIR`` of its own.
nginx runs as an unprivileged process on a loopback port with ``deploy/nginx/lifeline.conf``, its
placeholders filled in as envsubst would: TLS, the nodes as its upstream, websockets on
/socket.io/. Which node a request reaches may be pinned by a cookie (``lifeline_node=a``): the
test's nginx.conf wraps the repository's file and sends pinned requests to a one-node upstream,
unpinned ones to the balanced upstream; nginx's own access log says which node answered.

Clients may connect to nginx from any address of 127.0.0.0/8 (Linux answers the whole block on
loopback): nginx sees each as a caller of its own and forwards it as the repository's file says,
so the nodes, trusting nginx (``TRUSTED_PROXIES``), see many callers as a centre does.

In the embedded test run a centre gets a PostgreSQL database and a Redis database of its own; in
the scale-out run, the run's own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
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
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from config import Settings
from tests import stores
from tests.browser.conftest import RunningServer, start_server, stop_server

NGINX = "/usr/sbin/nginx"
TEMPLATE = Path(__file__).resolve().parents[1] / "deploy" / "nginx" / "lifeline.conf"
PLACEHOLDER = re.compile(r"\$\{(LIFELINE_[A-Z_]+)\}")
PIN_COOKIE = "lifeline_node"
# Where the embedded run makes a centre's own database.
EMBEDDED_SERVER_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PSEUDONYM_KEY = "edge-test-key-0123456789abcdef0123"
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def render(template: str, values: dict[str, str]) -> str:
    """The template's ${LIFELINE_...} names filled in, as envsubst limited to them does; a
    name the test does not know fails here."""
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


def pinned_conf(rendered: str, ports: dict[str, int], directory: Path) -> str:
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


def self_signed(directory: Path) -> tuple[Path, Path]:
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


def embedded_database(name: str, create: bool) -> str:
    """Drop (and create) a database of the embedded run's own; its URL."""

    async def run() -> None:
        conn = await asyncpg.connect(EMBEDDED_SERVER_URL)
        try:
            await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            if create:
                await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()
    return f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"


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


def start_nginx(directory: Path, conf: str) -> subprocess.Popen[bytes]:
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


def wait_ready(centre: Centre) -> None:
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


@contextmanager
def run_centre(
    root: Path,
    *,
    database: str,
    redis_db: int,
    extra_env: dict[str, str] | None = None,
    media_workers: dict[str, str] | None = None,
    own_stores: bool = False,
) -> Iterator[Centre]:
    """Nodes ``a`` and ``b`` (node A's media in a worker process, B's in the node: the default
    ``media_workers``) behind nginx, ready through it; everything stopped on the way out.
    ``database`` and ``redis_db``: this centre's own stores in the embedded run, and in either
    run with ``own_stores`` (the bench, whose runs must not touch a test run's stores)."""
    if not Path(NGINX).exists():
        pytest.fail("Debian's nginx is required: apt-get install nginx")
    shared = stores.SCALE_OUT and not own_stores
    if shared:
        stores.reset_postgres_schema()
        database_url, redis_url = stores.DATABASE_URL, stores.REDIS_URL
    else:
        database_url = embedded_database(database, create=True)
        redis_url = f"redis://127.0.0.1:6379/{redis_db}"
    stores.flush_redis(redis_url)
    storage_dir = root / "shared-storage"
    # nginx's own directory, outside pytest's (whose parents are private to the test's user).
    proxy_dir = Path(tempfile.mkdtemp(prefix="lifeline-nginx-"))
    workers = media_workers or {"a": "1", "b": "0"}
    ports = {name: free_port() for name in workers}
    proxy_port = free_port()
    base = f"https://127.0.0.1:{proxy_port}"
    common = {
        "LIFELINE_DATABASE_URL": database_url,
        "LIFELINE_REDIS_URL": redis_url,
        "LIFELINE_STORAGE_DIR": str(storage_dir),
        "LIFELINE_PUBLIC_URL": base,
        "LIFELINE_TRUSTED_PROXIES": "127.0.0.1/32",
        "LIFELINE_PSEUDONYM_KEY": PSEUDONYM_KEY,
        "LIFELINE_MEDIA_ADDRESSES": "127.0.0.1",
        **(extra_env or {}),
    }
    nodes: dict[str, RunningServer] = {}
    centre = Centre(base, nodes, ports, storage_dir, proxy_dir / "access.log")
    try:
        # One after the other: the first migrates the database, the others find it current.
        for name, count in workers.items():
            nodes[name] = start_server(
                root / f"node-{name}",
                {**common, "LIFELINE_NODE_ID": f"node-{name}", "LIFELINE_MEDIA_WORKERS": count},
                port=ports[name],
                fresh_stores=False,
            )
        cert, key = self_signed(proxy_dir)
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
        centre.nginx = start_nginx(proxy_dir, pinned_conf(site, ports, proxy_dir))
        wait_ready(centre)
        yield centre
    finally:
        if centre.nginx is not None:
            centre.nginx.terminate()
            centre.nginx.wait(timeout=15)
        for server in nodes.values():
            stop_server(server)
        shutil.rmtree(proxy_dir, ignore_errors=True)
        if not shared:
            embedded_database(database, create=False)
