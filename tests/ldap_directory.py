"""A directory of the test's own: Debian's slapd on a free loopback port, with its own
slapd.conf and an mdb database in a temporary folder, loaded with slapadd before it starts.

Nothing of the system slapd is used (its cn=config, its port 389, its database): the test's
slapd runs in the foreground of its own process group and is stopped, or killed after a
bounded wait, by the test that started it. ``pause`` and ``resume`` freeze it with SIGSTOP:
the kernel still accepts connections to its port, nothing answers (a hung directory).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SUFFIX = "dc=lifeline,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=lifeline,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service bind secret"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")
START_WITHIN_SECS = 10.0
STOP_WITHIN_SECS = 5.0


@dataclass(frozen=True)
class Person:
    uid: str
    password: str
    disabled: bool = False
    groups: tuple[str, ...] = ()

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"


def group_dn(name: str) -> str:
    return f"cn={name},{GROUPS}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ldif(people: list[Person]) -> str:
    """The tree: the suffix, people (inetOrgPerson), groups (groupOfNames), the service."""
    blocks = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: lifeline\n"
        "o: Lifeline test\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: person\ncn: lifeline\nsn: service\n"
        f"userPassword: {SERVICE_PASSWORD}\n",
    ]
    for person in people:
        # The disabled mark is the test's own attribute: LDAP_DISABLED_FILTER names it, so
        # slapd itself still lets the person bind and only Lifeline's filter refuses them.
        mark = "employeeType: disabled\n" if person.disabled else ""
        blocks.append(
            f"dn: {person.dn}\nobjectClass: inetOrgPerson\nuid: {person.uid}\n"
            f"cn: {person.uid}\nsn: {person.uid}\nuserPassword: {person.password}\n{mark}"
        )
    names = sorted({name for person in people for name in person.groups})
    for name in names:
        members = "".join(f"member: {p.dn}\n" for p in people if name in p.groups)
        blocks.append(f"dn: {group_dn(name)}\nobjectClass: groupOfNames\ncn: {name}\n{members}")
    return "\n".join(blocks)


class Directory:
    """One slapd on 127.0.0.1:<free port> serving ``SUFFIX`` from ``folder``."""

    def __init__(
        self, folder: Path, people: list[Person], tls: tuple[Path, Path] | None = None
    ) -> None:
        """``tls``: a certificate and its key, for StartTLS on ``url`` and ``ldaps_url``."""
        self.folder = folder
        self.port = _free_port()
        self.url = f"ldap://127.0.0.1:{self.port}"
        self.ldaps_url = f"ldaps://127.0.0.1:{_free_port()}" if tls else ""
        self._process: subprocess.Popen[bytes] | None = None
        (folder / "db").mkdir(parents=True, exist_ok=True)
        self._config = folder / "slapd.conf"
        schema = "".join(f"include /etc/ldap/schema/{name}.schema\n" for name in SCHEMAS)
        certificate = (
            f"TLSCertificateFile {tls[0]}\nTLSCertificateKeyFile {tls[1]}\n" if tls else ""
        )
        self._config.write_text(
            f"{schema}{certificate}"
            f"pidfile {folder}/slapd.pid\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            f"database mdb\nsuffix {SUFFIX}\nrootdn cn=admin,{SUFFIX}\n"
            f"directory {folder}/db\nmaxsize 16777216\n"
            "access to attrs=userPassword by anonymous auth by * none\n"
            f'access to * by dn.exact="{SERVICE_DN}" read by self read by * none\n'
        )
        (folder / "tree.ldif").write_text(_ldif(people))
        subprocess.run(
            ["slapadd", "-f", str(self._config), "-l", str(folder / "tree.ldif")],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip

    def start(self) -> None:
        """Serve, in the foreground (-d 0), and return once the port takes connections."""
        self._process = subprocess.Popen(
            ["slapd", "-d", "0", "-f", str(self._config), "-h", f"{self.url} {self.ldaps_url}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + START_WITHIN_SECS
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"slapd exited at start ({self._process.returncode})")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        """Freeze slapd: connections are accepted by the kernel, nothing ever answers."""
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self._process is not None
        os.killpg(self._process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``STOP_WITHIN_SECS``: never left running."""
        process, self._process = self._process, None
        if process is None:
            return
        os.killpg(process.pid, signal.SIGCONT)  # a paused one cannot act on SIGTERM
        process.terminate()
        try:
            process.wait(STOP_WITHIN_SECS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_WITHIN_SECS)

    @property
    def running(self) -> bool:
        return self._process is not None
