"""Real PostgreSQL and MariaDB servers for the tests: private instances on free loopback
ports, run as an unprivileged user, stopped by pid.

PostgreSQL is set up with ``initdb`` and started with ``pg_ctl``; MariaDB with
``mariadb-install-db`` and ``mariadbd``. Run as root, both run as ``nobody`` in a directory
of their own under the system's temporary directory; run as anyone else, as that user.
Neither ever touches a server the machine already runs: each has its own data directory,
port and no Unix socket others would look for.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .redis_servers import free_port

STARTUP_SECONDS = 60
#: The user and password of the account the tests use on either server.
ACCOUNT = "sessions"


def _unprivileged() -> dict[str, Any]:
    """`subprocess` arguments that run a server as ``nobody`` when we are root."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _own_directory(prefix: str) -> Path:
    """A fresh directory the server's user owns (the pytest temporary directories are
    private to the user running the tests)."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    options = _unprivileged()
    if options:
        os.chown(directory, options["user"], options["group"])
    return directory


def find_binary(name: str, *patterns: str) -> str | None:
    """``name`` on PATH, or the newest match of ``patterns`` (Debian keeps PostgreSQL's
    programs under /usr/lib/postgresql/<version>/bin, and mariadbd under /usr/sbin)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        (path for pattern in patterns for path in glob.glob(pattern)),
        key=lambda path: [int(part) for part in path.split("/") if part.isdigit()],
    )
    return candidates[-1] if candidates else None


def _wait_for(port: int, process_alive: Any, log: Path, what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as probe:
                if what != "MariaDB" or probe.recv(16):  # MariaDB greets first
                    return
        except OSError:
            pass
        if not process_alive() or time.monotonic() > deadline:
            text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} on port {port} did not start:\n{text}")
        time.sleep(0.05)


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (PostgreSQL's backends and workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces, so split after its ')'.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return found


def _wait_gone(pid: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while Path(f"/proc/{pid}").exists():
        try:  # a child of ours: reap it; otherwise wait for it to vanish
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if time.monotonic() > deadline:  # pragma: no cover - a server that will not stop
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + seconds
        time.sleep(0.02)


class PostgresServer:
    """One private PostgreSQL instance: ``initdb`` once, then ``pg_ctl start``; stopped,
    paused and resumed by the postmaster's pid (and, for a pause, its children's)."""

    def __init__(self) -> None:
        initdb = find_binary("initdb", "/usr/lib/postgresql/*/bin/initdb")
        pg_ctl = find_binary("pg_ctl", "/usr/lib/postgresql/*/bin/pg_ctl")
        if initdb is None or pg_ctl is None:  # pragma: no cover - the test command installs it
            raise RuntimeError("PostgreSQL's initdb and pg_ctl were not found")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.directory = _own_directory("fsd-postgres-")
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self.port = free_port()
        self.pid = 0

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{ACCOUNT}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        run = _unprivileged()
        if not self.data.exists():
            subprocess.run(  # noqa: S603 - the machine's initdb
                [
                    *(self.initdb, "-D", str(self.data), "-U", ACCOUNT, "-A", "trust"),
                    *("-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"),
                ],
                check=True,
                capture_output=True,
                cwd=self.directory,
                **run,
            )
        options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                "-c unix_socket_directories=''",
                # Acknowledged writes reach the kernel before the answer (synchronous_commit
                # stays on), so they survive the server being killed; fsync only guards
                # against the machine itself going down, which no test does.
                "-c fsync=off",
                "-c shared_buffers=32MB",
                "-c max_connections=200",
            ]
        )
        subprocess.run(  # noqa: S603 - the machine's pg_ctl
            [
                *(self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", options),
                *("-w", "-t", str(STARTUP_SECONDS), "start"),
            ],
            check=True,
            capture_output=True,
            cwd=self.directory,
            **run,
        )
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        _wait_for(self.port, lambda: Path(f"/proc/{self.pid}").exists(), self.log, "PostgreSQL")
        return self

    def stop(self) -> None:
        """A fast shutdown by the postmaster's pid (resumed first if it was paused)."""
        if not self.pid or not Path(f"/proc/{self.pid}").exists():
            return
        self.resume()
        os.kill(self.pid, signal.SIGINT)
        _wait_gone(self.pid)
        self.pid = 0

    def pause(self) -> None:
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, number: int) -> None:
        os.kill(self.pid, number)
        for pid in _children(self.pid):
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.kill(pid, number)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PgBouncer:
    """A private PgBouncer in front of a PostgreSQL server, in transaction pooling mode (a
    client holds a server connection only for the length of a transaction, as most
    deployments run it); stopped by its pid."""

    def __init__(self, postgres_port: int, *, pool_size: int = 4) -> None:
        binary = find_binary("pgbouncer", "/usr/sbin/pgbouncer")
        if binary is None:  # pragma: no cover - the test command installs it
            raise RuntimeError("pgbouncer was not found")
        self.binary = binary
        self.directory = _own_directory("fsd-pgbouncer-")
        self.log = self.directory / "pgbouncer.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        (self.directory / "userlist.txt").write_text(f'"{ACCOUNT}" ""\n')
        (self.directory / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"postgres = host=127.0.0.1 port={postgres_port} dbname=postgres "
                    f"user={ACCOUNT}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.directory / 'userlist.txt'}",
                    "pool_mode = transaction",
                    f"default_pool_size = {pool_size}",
                    "max_client_conn = 500",
                    f"logfile = {self.log}",
                    "",
                ]
            )
        )

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{ACCOUNT}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PgBouncer:
        self.process = subprocess.Popen(  # noqa: S603 - the machine's pgbouncer
            [self.binary, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
            **_unprivileged(),
        )
        process = self.process
        _wait_for(self.port, lambda: process.poll() is None, self.log, "PgBouncer")
        return self

    def pause(self) -> None:
        """Freeze it (SIGSTOP): its clients' calls wait, as on a stalled pooler."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Stop it by its pid (its clients' connections drop)."""
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.terminate()
            self.process.wait(timeout=STARTUP_SECONDS)
        self.process = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class MariaDBServer:
    """One private MariaDB instance: ``mariadb-install-db`` once, then ``mariadbd``; one
    process, stopped, paused and resumed by its pid."""

    def __init__(self) -> None:
        install = find_binary("mariadb-install-db", "/usr/bin/mariadb-install-db")
        server = find_binary("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd")
        if install is None or server is None:  # pragma: no cover - the test command installs it
            raise RuntimeError("MariaDB's mariadb-install-db and mariadbd were not found")
        self.install, self.server = install, server
        self.directory = _own_directory("fsd-mariadb-")
        self.data = self.directory / "data"
        self.log = self.directory / "mariadb.log"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql+aiomysql://{ACCOUNT}:{ACCOUNT}@127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> MariaDBServer:
        run = _unprivileged()
        init = self.directory / "init.sql"
        if not self.data.exists():
            subprocess.run(  # noqa: S603 - the machine's mariadb-install-db
                [
                    *(self.install, "--no-defaults", f"--datadir={self.data}", "--skip-test-db"),
                    *("--auth-root-authentication-method=normal", "--skip-name-resolve"),
                ],
                check=True,
                capture_output=True,
                cwd=self.directory,
                **run,
            )
            init.write_text(
                f"CREATE DATABASE IF NOT EXISTS {ACCOUNT};\n"
                f"CREATE USER IF NOT EXISTS '{ACCOUNT}'@'127.0.0.1' IDENTIFIED BY '{ACCOUNT}';\n"
                f"GRANT ALL ON *.* TO '{ACCOUNT}'@'127.0.0.1';\n"
            )
        arguments = [
            self.server,
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.directory / 'mariadb.sock'}",
            f"--pid-file={self.directory / 'mariadb.pid'}",
            f"--log-error={self.log}",
            f"--init-file={init}",
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-buffer-pool-size=64M",
            # Each commit is written to the log before the answer, and flushed to disk once
            # a second: acknowledged writes survive the server being killed.
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=300",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - the machine's mariadbd
            arguments,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.directory,
            **run,
        )
        process = self.process
        _wait_for(self.port, lambda: process.poll() is None, self.log, "MariaDB")
        return self

    def stop(self) -> None:
        """Stop it by its pid (resuming it first if it was paused)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a server that will not stop
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
