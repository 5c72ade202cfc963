"""Hosts as Linux network namespaces on a private bridge, for bench/cluster.py (root and Debian's iproute2 needed).

The bridge lives in a namespace of its own (`<prefix>-lan`), not in the machine's: no host namespace has a route
anywhere but the bridge's subnet, so nothing sent inside the test bed can leave it. The subnet is 198.18.0.0/24,
the range set aside for network benchmarks (RFC 2544); every address in it is one of these namespaces.

Every process runs in its own session (`ip netns exec NS ...` execs the command, so its pid is the program's), and
`Net.stop()` kills every process group that was started and deletes every namespace (call it in a finally).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from pathlib import Path

SUBNET = "198.18.0"
CLONE_NEWNET = 0x40000000  # os.CLONE_NEWNET from Python 3.12 on
PREFIX = os.environ.get("CLUSTER_NETNS_PREFIX", "ipcl")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


class Proc:
    """One program started in a namespace, in its own process group, with its output in a log file."""

    def __init__(self, host: str, name: str, popen: subprocess.Popen, log: Path):
        self.host, self.name, self.popen, self.log = host, name, popen, log

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`kill -9` (or `sig`) to the whole process group: the program and every child it forked."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=15)
        if self.popen.poll() is None:  # a graceful signal was not enough
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)


class Net:
    """The namespaces `<prefix>-<host>` with addresses 198.18.0.<n>, joined by veth pairs on one bridge."""

    def __init__(self, hosts: dict[str, int], log_dir: Path):
        self.hosts = hosts  # name -> last octet
        self.log_dir = log_dir
        self.procs: list[Proc] = []
        self.made: list[str] = []

    def ns(self, host: str) -> str:
        return f"{PREFIX}-{host}"

    def addr(self, host: str) -> str:
        return f"{SUBNET}.{self.hosts[host]}"

    @staticmethod
    def leftovers() -> list[str]:
        """Namespaces of an earlier run that was killed before it could clean up (same prefix)."""
        out = ip("netns", "list", check=False).stdout
        return [line.split()[0] for line in out.splitlines() if line.split() and line.split()[0].startswith(PREFIX)]

    def start(self) -> None:
        for name in self.leftovers():
            ip("netns", "delete", name, check=False)
        lan = self.ns("lan")
        ip("netns", "add", lan)
        self.made.append(lan)
        ip("-n", lan, "link", "set", "lo", "up")
        ip("-n", lan, "link", "add", "br0", "type", "bridge")
        ip("-n", lan, "link", "set", "br0", "up")
        for host, octet in self.hosts.items():
            ns = self.ns(host)
            ip("netns", "add", ns)
            self.made.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"v-{host}", "netns", lan)
            ip("-n", ns, "addr", "add", f"{SUBNET}.{octet}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", lan, "link", "set", f"v-{host}", "master", "br0")
            ip("-n", lan, "link", "set", f"v-{host}", "up")

    def link(self, host: str, up: bool) -> None:
        """Plug or unplug a host's cable (its port on the bridge): packets to and from it are dropped, silently."""
        ip("-n", self.ns("lan"), "link", "set", f"v-{host}", "up" if up else "down")

    def spawn(self, host: str, name: str, args: list[str], env: dict, *, cwd=None, user: str | None = None) -> Proc:
        log = self.log_dir / f"{host}-{name}.log"
        prefix = ["ip", "netns", "exec", self.ns(host)]
        if user:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"]
        handle = open(log, "ab")  # noqa: SIM115 - the child keeps its own copy; ours is closed below
        try:
            popen = subprocess.Popen(
                prefix + args, cwd=cwd, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            handle.close()
        proc = Proc(host, name, popen, log)
        self.procs.append(proc)
        return proc

    def run(self, host: str, args: list[str], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.ns(host), *args], timeout=timeout, **kwargs)

    def kill_host(self, host: str) -> list[str]:
        """kill -9 every process of a host (what a machine that loses power does to them); returns their names."""
        killed = [proc for proc in self.procs if proc.host == host and proc.alive]
        for proc in killed:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
        for proc in killed:
            proc.kill()
        return [proc.name for proc in killed]

    def stop(self) -> None:
        # Gentle first (PostgreSQL flushes, gunicorn closes), then kill -9 whatever is left; then the namespaces.
        for proc in reversed(self.procs):
            if proc.alive:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(proc.alive for proc in self.procs):
            time.sleep(0.2)
        for proc in self.procs:
            proc.kill()
        for ns in reversed(self.made):
            ip("netns", "delete", ns, check=False)
        self.made.clear()


def enter(ns: str) -> None:
    """Move this process (its main thread: call before starting any thread) into namespace `ns`, so every socket it
    and its children open is on the test bed's network."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{ns}") as handle:
        if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {ns} failed")
