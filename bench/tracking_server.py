"""A real MLflow tracking server for the tests and the chaos soak, as a cluster runs one: PostgreSQL (Debian's
package) behind ``mlflow server --serve-artifacts``, both on loopback, each a separate process,
started here and stopped at the end. Where PostgreSQL is not installed the server keeps its
records in SQLite instead, still a separate process over HTTP (``backend`` says which)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

POSTGRES_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as its own user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def postgres():
    """A throwaway PostgreSQL cluster on 127.0.0.1: yields its SQLAlchemy URI for MLflow. Its
    files live under /tmp, not pytest's tmp_path, whose parents its own user cannot enter."""
    bin_dir, port = POSTGRES_BIN[-1], free_port()
    root = Path(tempfile.mkdtemp(prefix="mqat-pg-", dir="/tmp"))
    data, sockets = root / "pgdata", root / "pgsock"
    data.mkdir(), sockets.mkdir()
    if os.geteuid() == 0:
        for path in (root, data, sockets):
            shutil.chown(path, "postgres")
    run = lambda *args: subprocess.run(_as_postgres([str(bin_dir / args[0]), *args[1:]]), check=True,
                                       capture_output=True, text=True)
    run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust")
    run("pg_ctl", "-D", str(data), "-l", str(root / "postgres.log"), "-w", "start",
        "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets}")
    try:
        run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlflow")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class TrackingServer:
    """``mlflow server`` as its own process; ``stop`` and ``start`` model a restart."""

    backend_uri: str
    artifacts: Path
    log: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120) -> None:
        self.port = self.port or free_port()
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend_uri,
                   "--serve-artifacts", "--artifacts-destination", str(self.artifacts),
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log, "a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"mlflow server not up in {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        """Killed, as a crashed server is: its whole process group (gunicorn/uvicorn workers too)."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)


@contextlib.contextmanager
def tracking_server(root: Path):
    """Yields a started :class:`TrackingServer` and its ``backend`` ("postgresql" or "sqlite")."""
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if POSTGRES_BIN:
            backend, uri = "postgresql", stack.enter_context(postgres())
        else:  # PostgreSQL not installed on this machine: the same server on SQLite
            backend, uri = "sqlite", f"sqlite:///{root / 'mlflow.db'}"
        server = TrackingServer(uri, root / "artifacts", root / "mlflow-server.log")
        server.start()
        stack.callback(server.stop)
        yield server, backend
