"""``barmap ssh``: a guest with SSH, one command or a session."""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

from barmap.cli import options
from barmap.cli.options import add_cli_vm_options
from barmap.guest import checks
from barmap.guest.machine import Machine


def cmd_ssh(args: argparse.Namespace) -> int:
    """Boot with SSH; run COMMAND (exit with its status) or an interactive ssh session."""
    config = options.config(args, ssh=True)
    log_dir = options.log_dir(args, "ssh")
    with Machine(config, log_dir=log_dir) as vm:
        if args.load:
            checks.load_module(vm)
        session = vm.ssh()
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        if command:
            status, out, err = session.exec(" ".join(command), timeout=args.timeout)
            sys.stdout.write(out)
            sys.stderr.write(err)
            return status
        keys = session.keys
        known = vm.rundir / "known_hosts"
        known.write_text(f"[127.0.0.1]:{vm.ssh_port} ssh-ed25519 {keys.host_public}\n")
        print(
            f"barmap: guest up in {vm.boot_seconds:.1f} s; ssh on 127.0.0.1:{vm.ssh_port}",
            file=sys.stderr,
        )
        return subprocess.call([
            "ssh", "-i", str(keys.client_key), "-p", str(vm.ssh_port),
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
            "-o", "IdentitiesOnly=yes", "root@127.0.0.1",
        ])  # fmt: skip


def register(sub: Any) -> None:
    p = sub.add_parser("ssh", help="boot with SSH and run a command, or an ssh session")
    add_cli_vm_options(p)
    p.add_argument("--load", action="store_true", help="insmod the barmap driver first")
    p.add_argument("--timeout", type=float, default=300.0, help="command timeout, seconds")
    p.add_argument("command", nargs=argparse.REMAINDER, help="command to run in the guest")
    p.set_defaults(func=cmd_ssh)
