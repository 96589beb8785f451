"""SSH into the guest: dropbear in the initramfs, paramiko here, keys made per run.

The host key and the client key are generated for each VM and handed to the
guest in an initrd overlay; paramiko accepts exactly that host key.  QEMU's
user-mode network forwards a free port on 127.0.0.1 to the guest's port 22.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import paramiko

from barmap.errors import MachineError
from barmap.guest.overlay import cpio_archive

HOST_KEY_GUEST_PATH = "/etc/dropbear/dropbear_ed25519_host_key"


class SshKeys:
    """A per-run host key (dropbear format) and client key (OpenSSH format)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.host_key = directory / "host_ed25519.dropbear"
        self.client_key = directory / "id_ed25519"
        subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(self.host_key)],
                       check=True, capture_output=True)  # fmt: skip
        pub = subprocess.run(["dropbearkey", "-y", "-f", str(self.host_key)],
                             check=True, capture_output=True, text=True).stdout  # fmt: skip
        line = next(ln for ln in pub.splitlines() if ln.startswith("ssh-ed25519 "))
        self.host_public = line.split()[1]
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "barmap",
                        "-f", str(self.client_key)], check=True)  # fmt: skip
        self.client_public = (directory / "id_ed25519.pub").read_text().strip()

    def overlay(self) -> bytes:
        return cpio_archive(
            files={
                "/root/.ssh/authorized_keys": (0o600, (self.client_public + "\n").encode()),
                HOST_KEY_GUEST_PATH: (0o600, self.host_key.read_bytes()),
            },
            dirs={"/root": 0o700, "/root/.ssh": 0o700, "/etc": 0o755, "/etc/dropbear": 0o700},
        )


class _ExactHostKey(paramiko.MissingHostKeyPolicy):
    def __init__(self, expected_b64: str) -> None:
        self.expected = expected_b64

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if base64.b64encode(key.asbytes()).decode() != self.expected:
            raise paramiko.SSHException(f"host key of {hostname} is not this VM's")


class SshSession:
    """``exec`` with exit status, and file transfer, over one SSH connection."""

    def __init__(
        self,
        port: int,
        keys: SshKeys,
        timeout: float = 60.0,
        *,
        check_crash: Callable[[], None] = lambda: None,
        timed_out: Callable[[str, float], NoReturn] | None = None,
    ) -> None:
        """``check_crash`` raises GuestCrash once the guest's kernel has reported a failure;
        ``timed_out(command, seconds)`` raises the error of a command that did not end."""
        self.port = port
        self.keys = keys
        self._check_crash = check_crash
        self._timed_out = timed_out
        self.client = paramiko.SSHClient()
        self.client.set_missing_host_key_policy(_ExactHostKey(keys.host_public))
        # paramiko logs each refused early attempt with a traceback; the last error is ours
        logging.getLogger("paramiko").setLevel(logging.CRITICAL)
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                self.client.connect("127.0.0.1", port=port, username="root",
                                    key_filename=str(keys.client_key), timeout=5,
                                    banner_timeout=10, auth_timeout=10, look_for_keys=False,
                                    allow_agent=False)  # fmt: skip
                return
            except (OSError, paramiko.SSHException) as exc:
                last = exc
                time.sleep(0.5)
        raise MachineError(f"ssh to 127.0.0.1:{port} failed within {timeout:.0f} s: {last}")

    def exec(self, command: str, timeout: float = 60.0) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of ``command`` in the guest.

        Raises GuestCrash when the guest's kernel reports a failure while it runs (or by
        its end: a command the report stopped never ends), and the machine's timeout error,
        with the console's last words, when it does not end within ``timeout``.
        """
        transport = self.client.get_transport()
        if transport is None or not transport.is_active():
            raise MachineError(f"ssh to 127.0.0.1:{self.port}: the connection is gone")
        chan = transport.open_session()
        chan.exec_command(command)
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout
        try:
            while True:
                while chan.recv_ready():
                    out += chan.recv(65536)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if (
                    chan.exit_status_ready()
                    and not chan.recv_ready()
                    and not chan.recv_stderr_ready()
                ):
                    break
                self._check_crash()
                if time.monotonic() > deadline:
                    self._check_crash()
                    if self._timed_out is not None:
                        self._timed_out(command, timeout)
                    raise MachineError(f"ssh command {command!r}: no end within {timeout:.0f} s")
                time.sleep(0.02)
            status = chan.recv_exit_status()
        finally:
            chan.close()
        self._check_crash()
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def put(self, local: Path, remote: str, mode: int = 0o644) -> None:
        """Copy a host file to the guest (the image's dropbear has no SFTP: ``cat`` over exec)."""
        transport = self.client.get_transport()
        assert transport is not None
        chan = transport.open_session()
        chan.exec_command(
            f"cat > {remote}.part && chmod {mode:o} {remote}.part && mv {remote}.part {remote}"
        )
        chan.sendall(Path(local).read_bytes())
        chan.shutdown_write()
        status = chan.recv_exit_status()
        chan.close()
        if status != 0:
            raise MachineError(f"copying {local} to the guest's {remote} failed (status {status})")

    def get(self, remote: str) -> bytes:
        """A guest file's bytes."""
        _, stdout, _ = self.client.exec_command(f"cat {remote}")
        data = stdout.read()
        if stdout.channel.recv_exit_status() != 0:
            raise MachineError(f"reading the guest's {remote} failed")
        return bytes(data)

    def close(self) -> None:
        self.client.close()
