"""A throwaway certificate authority for a secured development broker, made with `openssl` at start-up.

Keys are EC P-256 in PKCS#8 PEM without a passphrase: Kafka reads them as a `PEM` keystore and Python's `ssl`
loads them directly. Everything lives in the broker's temp dir and goes with it; nothing here is for production.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from hub_devstack.errors import StartupError
from hub_devstack.procs import LOOPBACK, require_tool

_DAYS = "30"
_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-noenc"]


@dataclass(frozen=True)
class Identity:
    """A certificate (chain up to, not including, the CA) and its private key."""

    name: str
    certfile: Path
    keyfile: Path

    def keystore_pem(self) -> str:
        """Key then certificate in one PEM: Kafka's `ssl.keystore.type=PEM` file format."""
        return self.keyfile.read_text() + self.certfile.read_text()


class CertificateAuthority:
    """`ca.pem`/`ca.key` in `folder`; `issue()` signs a leaf certificate whose CN is the principal name."""

    def __init__(self, folder: Path) -> None:
        self._openssl = require_tool("openssl", "install OpenSSL (e.g. `apt-get install openssl`)")
        self.folder = folder
        self.certfile = folder / "ca.pem"
        self._keyfile = folder / "ca.key"
        folder.mkdir(parents=True, exist_ok=True)
        self._run(
            "req", "-x509", *_KEY, "-keyout", str(self._keyfile), "-out", str(self.certfile), "-days", _DAYS,
            "-subj", "/CN=integration-hub development CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def issue(self, name: str, *, server: bool = False) -> Identity:
        """A certificate with `CN=<name>`, valid for client auth (and for the loopback address if `server`)."""
        key, cert = self.folder / f"{name}.key", self.folder / f"{name}.pem"
        usage = "serverAuth,clientAuth" if server else "clientAuth"
        extensions = ["-addext", f"extendedKeyUsage={usage}", "-addext", "basicConstraints=critical,CA:FALSE"]
        if server:
            extensions += ["-addext", f"subjectAltName=IP:{LOOPBACK},DNS:localhost"]
        self._run(
            "req", "-x509", *_KEY, "-keyout", str(key), "-out", str(cert), "-days", _DAYS, "-subj", f"/CN={name}",
            "-CA", str(self.certfile), "-CAkey", str(self._keyfile), *extensions,
        )  # fmt: skip
        key.chmod(0o600)
        return Identity(name, cert, key)

    def _run(self, *args: str) -> None:
        done = subprocess.run([self._openssl, *args], capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise StartupError(f"openssl {args[0]}", f"exit {done.returncode}", done.stderr[-2000:])
