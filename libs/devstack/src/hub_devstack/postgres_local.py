"""A private PostgreSQL cluster: `initdb` into a temp dir, `pg_ctl start` on a free loopback port, password auth."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from hub_devstack.errors import DevstackError, StartupError, ToolMissingError
from hub_devstack.procs import LOOPBACK, free_port, log_tail, start_on_free_ports, wait_until

SERVER_USER = "postgres"
# A throwaway test/demo cluster: durability off (nothing survives it anyway), room for one test session's pools.
SERVER_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "max_connections=300")
_HINT = "install the PostgreSQL server (e.g. `apt-get install postgresql-15`) or set DATABASE_URL"


def find_pg_bin(tool: str, search: list[str] | None = None) -> str:
    """`tool` from PATH, else from the newest /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(tool)
    if found:
        return found
    dirs = search if search is not None else glob.glob("/usr/lib/postgresql/*/bin")

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    for folder in sorted(dirs, key=version, reverse=True):
        candidate = Path(folder) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise ToolMissingError(tool, _HINT)


def as_server_user(cmd: list[str], *, is_root: bool) -> list[str]:
    # initdb and postgres refuse to run as root; root hands them to the `postgres` account instead.
    return ["runuser", "-u", SERVER_USER, "--", *cmd] if is_root else cmd


class LocalPostgres:
    """Owns one cluster and its temp dir; `start()` returns the superuser URL of database `postgres`."""

    def __init__(self, *, port: int | None = None, start_timeout_s: float = 60.0) -> None:
        self._port = port
        self._timeout = start_timeout_s
        self._dir: Path | None = None
        self._pg_ctl = ""
        self._is_root = os.geteuid() == 0
        self.url = ""

    def _run(self, cmd: list[str], what: str) -> None:
        done = subprocess.run(
            as_server_user(cmd, is_root=self._is_root), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-3000:]
            if self._dir is not None:
                tail += "\n" + log_tail(self._dir / "postgres.log")
            raise StartupError(what, f"exit {done.returncode}", tail.strip())

    def _hand_over(self, path: Path) -> None:
        """Make `path` readable by the server account only (root runs initdb as that account)."""
        path.chmod(0o600)
        if self._is_root:
            account = pwd.getpwnam(SERVER_USER)
            os.chown(path, account.pw_uid, account.pw_gid)

    def _make_dir(self) -> Path:
        workdir = Path(tempfile.mkdtemp(prefix="hub-pg-"))
        if self._is_root:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                shutil.rmtree(workdir)
                raise DevstackError(
                    f"running as root needs a `{SERVER_USER}` account to run initdb; create it or set DATABASE_URL"
                ) from None
            os.chown(workdir, account.pw_uid, account.pw_gid)
        return workdir

    def start(self) -> str:
        return start_on_free_ports(self._start_once, ports_chosen_here=self._port is None)

    def _start_once(self) -> str:
        initdb = find_pg_bin("initdb")
        self._pg_ctl = find_pg_bin("pg_ctl")
        pg_isready = find_pg_bin("pg_isready")
        self._dir = workdir = self._make_dir()
        data = workdir / "data"
        port = self._port or free_port()
        # Password authentication (not trust), so the roles' generated passwords are really checked.
        password = secrets.token_urlsafe(32)
        pwfile = workdir / "superuser-password"
        try:
            pwfile.write_text(password + "\n")
            self._hand_over(pwfile)
            self._run(
                [initdb, "-D", str(data), "-U", SERVER_USER, "--auth=scram-sha-256", f"--pwfile={pwfile}",
                 "-E", "UTF8", "--no-sync"],
                "PostgreSQL initdb",
            )  # fmt: skip
            pwfile.unlink()
            options = f"-p {port} -c listen_addresses={LOOPBACK} -k {workdir} " + " ".join(
                f"-c {setting}" for setting in SERVER_SETTINGS
            )
            self._run(
                [self._pg_ctl, "start", "-D", str(data), "-l", str(workdir / "postgres.log"), "-o", options,
                 "-w", "-t", str(int(self._timeout))],
                "PostgreSQL",
            )  # fmt: skip
            probe = [pg_isready, "-q", "-h", LOOPBACK, "-p", str(port), "-U", SERVER_USER]
            if not wait_until(lambda: subprocess.run(probe, check=False).returncode == 0, timeout_s=self._timeout):
                raise StartupError("PostgreSQL", "pg_isready never answered", log_tail(workdir / "postgres.log"))
        except BaseException:
            self.stop()
            raise
        self.url = f"postgresql://{SERVER_USER}:{password}@{LOOPBACK}:{port}/postgres"
        return self.url

    def stop(self) -> None:
        if self._dir is None:
            return
        data = self._dir / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(
                as_server_user([self._pg_ctl, "stop", "-D", str(data), "-m", "fast", "-w"], is_root=self._is_root),
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
