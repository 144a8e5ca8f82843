"""Talking to phones through an adb server (adbutils), with validated serials, quoted commands and retries.

The server is `--adb HOST:PORT` when given, else `ADB_SERVER_SOCKET` (``tcp:HOST:PORT``), else
`ANDROID_ADB_SERVER_PORT` on 127.0.0.1, else 127.0.0.1:5037, the same rules as the adb command line, so a farm
host elsewhere on the network works too. Commands are argv lists joined with `shlex.quote`: a value can never
become shell syntax on the phone.

Phones whose adbd lacks the shell protocol v2 (the `shell_v2` feature, added in Android 7.0) are driven with the
legacy shell service: the exit status comes from a sentinel with a random nonce that the command line echoes after
the command, stderr arrives merged into stdout, and the CRLF line endings of the old adbd's pty are turned back into
LF (ShellResult.stdout then holds both streams and ShellResult.stderr is empty).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import adbutils
from adbutils.errors import AdbError, AdbTimeout

from ..errors import BadInput, OperationFailed, shorten

DEFAULT_PORT = 5037
_SERIAL = re.compile(r"[A-Za-z0-9._:@\[\]-]{1,128}")
_SAFE_DEVICE_PATH = re.compile(r"/[A-Za-z0-9._/-]+")
TRANSIENT = (AdbError, AdbTimeout, ConnectionError, OSError, socket.timeout, EOFError)
T = TypeVar("T")


class FarmError(OperationFailed):
    """A phone or the adb server cannot be used; the message names the phone (or server) and the cause."""


class FarmInputError(BadInput):
    """A serial, adb address, alias, registry file or benchmark binary the user gave is not usable."""


class DeviceGone(FarmError):
    """The phone is not (or no longer) usable: missing, offline or unauthorized."""


def check_serial(serial: str) -> str:
    if not _SERIAL.fullmatch(serial):
        raise FarmInputError(f"invalid serial {shorten(serial)}: adb serials contain only letters, digits and ._:@[]-")
    return serial


def device_path(path: str) -> str:
    """A device path we generated ourselves: absolute, only [A-Za-z0-9._/-], no '..'. Anything else is refused."""
    if not _SAFE_DEVICE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise FarmError(f"unsafe device path {path!r}")
    return path


@dataclass(frozen=True)
class AdbServer:
    host: str
    port: int
    explicit: bool  # named by the user (flag or environment) rather than the local default

    @classmethod
    def resolve(cls, spec: str | None = None) -> AdbServer:
        """From `--adb HOST:PORT` (or PORT), else the standard environment variables, else 127.0.0.1:5037."""
        if spec:
            return cls._parse(spec, "--adb")
        socket_env = os.environ.get("ADB_SERVER_SOCKET")
        if socket_env:
            if not socket_env.startswith("tcp:"):
                raise FarmInputError(f"ADB_SERVER_SOCKET={shorten(socket_env)}: only tcp:HOST:PORT is supported")
            return cls._parse(socket_env[4:], "ADB_SERVER_SOCKET")
        port_env = os.environ.get("ANDROID_ADB_SERVER_PORT")
        if port_env:
            return cls._parse(port_env, "ANDROID_ADB_SERVER_PORT")
        return cls("127.0.0.1", DEFAULT_PORT, explicit=False)

    @classmethod
    def _parse(cls, spec: str, source: str) -> AdbServer:
        host, _, port = spec.rpartition(":")
        host = host or "127.0.0.1"
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise FarmInputError(f"{source}: expected HOST:PORT or PORT, got {shorten(spec)}")
        return cls(host.strip("[]"), int(port), explicit=True)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self) -> adbutils.AdbClient:
        """An adbutils client; an explicitly named server that does not answer is an error (adbutils would
        otherwise silently start a local adb server on the default port)."""
        if self.explicit or self.host not in ("127.0.0.1", "localhost"):
            try:
                socket.create_connection((self.host, self.port), timeout=3).close()
            except OSError as e:
                raise FarmError(f"no adb server at {self} ({e.strerror or e})") from None
        return adbutils.AdbClient(host=self.host, port=self.port, socket_timeout=30)

    def states(self) -> dict[str, str]:
        """serial -> state ("device", "offline", "unauthorized", ...) of every phone the server knows."""
        try:
            return {d.serial: d.state for d in self.client().list()}
        except TRANSIENT as e:
            raise FarmError(f"adb server {self}: {e}") from None


def server_name(server: AdbServer) -> str:
    """A canonical ``HOST:PORT`` for an adb server (``localhost`` is 127.0.0.1, an IPv6 host is bracketed)."""
    host = server.host.lower()
    host = "127.0.0.1" if host == "localhost" else host
    return f"[{host}]:{server.port}" if ":" in host else f"{host}:{server.port}"


@dataclass(frozen=True)
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str  # always empty on phones without shell protocol v2: their stderr is merged into stdout

    def said(self) -> str:
        """What the command printed to explain itself: its stderr, else (legacy shell, merged streams) its stdout."""
        return self.stderr.strip() or self.stdout.strip()


def _legacy_command(argv: list[str], nonce: str) -> str:
    """argv quoted, then an echo of `nonce:$?` so the legacy shell service (which reports no exit status) tells
    the command's exit status; `$?` there is the status of the quoted command itself."""
    return f"{shlex.join(argv)}; echo {nonce}:$?"


def parse_legacy_output(output: bytes, nonce: str) -> ShellResult:
    """The command's output and exit status from a legacy shell session that ran `_legacy_command`. The last
    `nonce:STATUS` is the sentinel (the nonce is random per call, so the command cannot print it by chance); CRLF
    from an old adbd's pty becomes LF. A missing sentinel means the session ended before the command did."""
    text = output.decode("utf-8", errors="replace").replace("\r\n", "\n")
    matches = list(re.finditer(rf"{re.escape(nonce)}:(\d+)\n?", text))
    if not matches:
        raise AdbError("the legacy shell session ended before the command's exit status arrived")
    last = matches[-1]
    return ShellResult(int(last.group(1)), text[:last.start()] + text[last.end():], "")


class Phone:
    """One phone on an adb server: shell with exit codes, sha256-skipping pushes, retries with backoff."""

    def __init__(self, server: AdbServer, serial: str, retries: int = 3, backoff_s: float = 0.5):
        self.server = server
        self.serial = check_serial(serial)
        self.retries = retries
        self.backoff_s = backoff_s
        self._shell_v2: bool | None = None  # whether adbd speaks shell protocol v2, asked once

    def state(self) -> str:
        return self.server.states().get(self.serial, "missing")

    def check_ready(self) -> None:
        state = self.state()
        if state == "device":
            return
        cause = {"missing": f"not connected to the adb server at {self.server}",
                 "unauthorized": "unauthorized (accept the USB debugging prompt on the phone)",
                 "offline": "offline (reconnect the cable or run `adb reconnect`)"}.get(state, f"state {state!r}")
        raise DeviceGone(f"{self.serial}: {cause}")

    def _retry(self, what: str, action: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return action()
            except TRANSIENT as e:
                if attempt == self.retries:
                    raise FarmError(f"{self.serial}: {what} failed after {attempt + 1} attempts ({e})") from None
                time.sleep(self.backoff_s * 2 ** attempt)
                self.check_ready()  # a phone that went away is reported as such, not retried forever
        raise AssertionError("unreachable")

    def _device(self) -> adbutils.AdbDevice:
        return self.server.client().device(self.serial)

    def supports_shell_v2(self) -> bool:
        """Whether the phone's adbd lists the `shell_v2` feature (asked once per Phone, then cached)."""
        if self._shell_v2 is None:
            features = self._retry("features", lambda: self._device().get_features())
            self._shell_v2 = "shell_v2" in features.split(",")
        return self._shell_v2

    def shell(self, argv: list[str], timeout: float = 60.0) -> ShellResult:
        """Run argv (each element quoted) through the phone's shell: with shell protocol v2 where adbd has it
        (stdout, stderr and exit status apart), else through the legacy service (see the module docstring)."""
        argv = list(argv)
        if self.supports_shell_v2():
            def run() -> ShellResult:
                r = self._device().shell2(argv, timeout=timeout, v2=True)
                return ShellResult(r.returncode, r.stdout, r.stderr)
        else:
            def run() -> ShellResult:
                nonce = f"evd-exit-{secrets.token_hex(8)}"
                output = self._device().shell(_legacy_command(argv, nonce), timeout=timeout, encoding=None,
                                              rstrip=False)
                return parse_legacy_output(output, nonce)
        return self._retry(f"shell {argv[0]}", run)

    def shell_script(self, script: str, timeout: float = 60.0) -> ShellResult:
        """Run a constant script of ours (globs, loops) through `sh -c`; it must contain no outside input."""
        return self.shell(["sh", "-c", script], timeout)

    def remote_sha256(self, remote: str) -> str | None:
        r = self.shell(["sha256sum", remote])
        return r.stdout.split()[0] if r.exit_code == 0 and r.stdout.strip() else None

    def push_if_changed(self, local: Path, remote: str, sha256: str, mode: int = 0o644) -> bool:
        """Push `local` to `remote` unless the phone already holds a file with `sha256` there. The upload goes to
        a temporary name and is renamed into place only when its hash checks out. True if a push happened."""
        device_path(remote)
        if self.remote_sha256(remote) == sha256:
            return False
        tmp = f"{remote}.part"
        directory = remote.rsplit("/", 1)[0]
        self.shell(["mkdir", "-p", directory])
        self._retry(f"push {local.name}", lambda: self._device().sync.push(str(local), tmp, mode=mode))
        if self.remote_sha256(tmp) != sha256:
            self.shell(["rm", "-f", tmp])
            raise FarmError(f"{self.serial}: pushed {local.name} but its sha256 on the phone does not match")
        r = self.shell(["mv", "-f", tmp, remote])
        if r.exit_code != 0:
            raise FarmError(f"{self.serial}: cannot move {tmp} into place: {r.said()}")
        return True
