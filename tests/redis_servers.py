"""Real redis-server processes for the tests: started on free loopback ports, stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

STARTUP_SECONDS = 15


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and, for cluster nodes, its port + 10000 for the cluster bus)."""
    for _ in range(100):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if not with_bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair found")  # pragma: no cover


def ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server child process, bound to 127.0.0.1 only."""

    def __init__(
        self,
        directory: Path,
        *,
        port: int | None = None,
        cluster: bool = False,
        durable: bool = False,
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:  # pragma: no cover - the test command installs it
            raise RuntimeError("redis-server is not on PATH; run the suite with scripts/test.sh")
        self.binary = binary
        self.port = port or free_port(with_bus=cluster)
        self.directory = directory
        self.cluster = cluster
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> RedisServer:
        arguments = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        if self.durable:  # every acknowledged write survives a restart
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            arguments += ["--appendonly", "no"]
        if self.cluster:
            arguments += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.directory / "nodes.conf"),
                "--cluster-node-timeout",
                "2000",
            ]
        self.process = subprocess.Popen(arguments, stdout=subprocess.DEVNULL)  # noqa: S603
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop the server by its pid (resuming it first if it was paused)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.pid, signal.SIGCONT)
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


class RedisCluster:
    """Three master nodes, joined with ``redis-cli --cluster create``."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [RedisServer(directory / f"node{i}", cluster=True) for i in range(3)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        redis_cli = shutil.which("redis-cli")
        if redis_cli is None:  # pragma: no cover - shipped with redis-server
            raise RuntimeError("redis-cli is not on PATH")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(  # noqa: S603
            [
                redis_cli,
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            states = [
                subprocess.run(  # noqa: S603
                    [redis_cli, "-p", str(node.port), "cluster", "info"],
                    capture_output=True,
                    text=True,
                    timeout=10,
                ).stdout
                for node in self.nodes
            ]
            if all("cluster_state:ok" in state for state in states):
                return self
            if time.monotonic() > deadline:  # pragma: no cover
                raise RuntimeError(f"the cluster did not come up: {states}")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


class RedisSentinel:
    """A redis-server in Sentinel mode, watching one master as ``mymaster``."""

    def __init__(self, directory: Path, master: RedisServer) -> None:
        self.server = RedisServer(directory)
        self.master = master

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)

    def start(self) -> RedisSentinel:
        config = self.server.directory / "sentinel.conf"
        config.write_text(
            f"port {self.server.port}\nbind 127.0.0.1\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master.port} 1\n"
        )
        self.server.process = subprocess.Popen(  # noqa: S603
            [self.server.binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ping(self.server.port):
            if time.monotonic() > deadline:  # pragma: no cover
                raise RuntimeError("redis sentinel did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.stop()
