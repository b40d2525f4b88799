"""The Kafka broker's jars from Maven Central, fetched once into a persistent cache shared by all runs."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hub_devstack.errors import DevstackError
from hub_devstack.paths import KAFKA_VERSION, find_infra_dir, kafka_cache_dir
from hub_devstack.procs import require_tool

MARKER = "COMPLETE"


class JarCache:
    """`<root>/libs/*.jar` plus a marker listing them, written only after Maven succeeded."""

    def __init__(self, root: Path, version: str = KAFKA_VERSION) -> None:
        self.root = root
        self.version = version
        self.libs = root / "libs"
        self.marker = root / MARKER

    @property
    def classpath(self) -> str:
        return f"{self.libs}/*"

    def is_complete(self) -> bool:
        """The marker exists, names the broker jar, and every jar it names is still there and non-empty."""
        try:
            names = [n for n in self.marker.read_text().splitlines() if n.strip()]
        except OSError:
            return False
        if f"kafka_2.13-{self.version}.jar" not in names:
            return False
        for name in names:
            jar = self.libs / name
            if not jar.is_file() or jar.stat().st_size == 0:
                return False
        return True

    def ensure(self, pom: Path) -> None:
        """Download the jars unless a complete cache exists; concurrent callers wait for the first one."""
        if self.is_complete():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / ".lock"):
            if self.is_complete():  # another process finished while we waited for the lock
                return
            self._download(pom)

    def _download(self, pom: Path) -> None:
        mvn = require_tool("mvn", "install Maven (e.g. `apt-get install maven`) to fetch the Kafka broker jars")
        self.marker.unlink(missing_ok=True)
        shutil.rmtree(self.libs, ignore_errors=True)
        cmd = [
            mvn, "-B", "-q", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={self.libs}",
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        except subprocess.TimeoutExpired as exc:
            raise DevstackError("mvn did not finish fetching the Kafka jars within 15 minutes") from exc
        jars = sorted(p.name for p in self.libs.glob("*.jar")) if self.libs.is_dir() else []
        if done.returncode != 0 or not jars:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
            raise DevstackError(f"mvn could not fetch the Kafka broker jars (exit {done.returncode}):\n{tail}")
        self.marker.write_text("\n".join(jars) + "\n")
        if not self.is_complete():
            raise DevstackError(f"mvn ran but {self.libs} has no kafka_2.13-{self.version}.jar; check {pom}")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def main() -> int:
    """`python -m hub_devstack.kafka_jars`: fill the cache (if needed) and print its jar directory.

    `make images` copies that directory into the Kafka image, so the image runs the very jars the local broker does.
    """
    cache = JarCache(kafka_cache_dir())
    try:
        cache.ensure(find_infra_dir() / "kafka" / "pom.xml")
    except DevstackError as exc:
        print(f"kafka jars: {exc.message}", file=sys.stderr)
        return 1
    print(cache.libs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
