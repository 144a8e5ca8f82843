"""The confinement of a simulated phone's shell: bubblewrap around an Android-like userland.

Every shell command of a phone runs as ``/system/bin/sh -c COMMAND`` (mksh, Android's shell) inside a bubblewrap
sandbox whose root file system is the phone's own tree: ``/system`` (mksh, toybox and its applets, the phone's
generated tools; read-only), ``/data`` and ``/sdcard`` (writable), ``/sys`` (the simulated sensors; read-only),
a private ``/proc`` and ``/dev``, and ``/dev/socket`` (read-only) holding the socket of the simulated
benchmark_model. Nothing else of the host is there but the C library files mksh and toybox link against. The
command runs as uid/gid 2000 (Android's ``shell``) in new user, PID, network, IPC, UTS and cgroup namespaces with
no capabilities, so it can read or write no host file outside the phone's tree, run no host program and reach no
network (the host's loopback included).

The simulated benchmark_model itself runs in a sandbox of its own (`tool_command`): it needs the host's Python and
LiteRT, so it sees the host's read-only system directories (/usr), Python and the toolkit, and writes only the
phone's state and sensor files; it has no network, no /etc, /home, /root or /tmp of the host, and gets the model
as an open file (benchmark_service.py), so even a model crafted against LiteRT's parser meets a confined process.

If bubblewrap, mksh or toybox is missing, or the kernel refuses the namespaces, `find_userland` raises
SandboxUnavailable with the reason: the simulator never falls back to an unconfined host shell.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CommandFailed

SHELL_UID = 2000  # AID_SHELL
SOCKET_DIR = "/dev/socket"
BENCHMARK_SOCKET = "evd-benchmark"  # the benchmark service's socket in SOCKET_DIR
PATH = ("/product/bin:/apex/com.android.runtime/bin:/apex/com.android.art/bin:/system_ext/bin:/system/bin:"
        "/system/xbin:/odm/bin:/vendor/bin:/vendor/xbin")
INSTALL_HINT = "apt-get install bubblewrap mksh toybox"
_LIBRARY = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x")


class SandboxUnavailable(CommandFailed):
    """The phones' shells cannot be confined on this host; the message says why and what to install (the CLI
    prints it as one line, exit status 1)."""


@dataclass(frozen=True)
class Userland:
    """The host programs a phone's sandbox is built from."""

    bwrap: str
    mksh: Path
    toybox: Path
    libraries: tuple[Path, ...]  # the shared libraries mksh and toybox load
    applets: tuple[str, ...]     # toybox's applets, linked into /system/bin as on Android


@functools.cache
def find_userland() -> Userland:
    """Locate bubblewrap, mksh and toybox and check that a sandbox can be created here."""
    found = {name: shutil.which(name) for name in ("bwrap", "mksh", "toybox", "ldd")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise SandboxUnavailable(f"cannot confine simulated phones: {', '.join(missing)} not found "
                                 f"(install them: {INSTALL_HINT})")
    mksh, toybox = Path(found["mksh"]).resolve(), Path(found["toybox"]).resolve()  # type: ignore[arg-type]
    libraries: set[Path] = set()
    for program in (mksh, toybox):
        out = subprocess.run([found["ldd"], str(program)], capture_output=True, text=True).stdout  # type: ignore
        libraries.update(Path(m.group(1)) for m in _LIBRARY.finditer(out))
    listing = subprocess.run([str(toybox)], capture_output=True, text=True).stdout.split()
    applets = tuple(a for a in listing if re.fullmatch(r"[a-z0-9][\w.-]*", a))
    userland = Userland(found["bwrap"], mksh, toybox, tuple(sorted(libraries)), applets)  # type: ignore[arg-type]
    _probe(userland)
    return userland


def _probe(userland: Userland) -> None:
    """Create one throw-away sandbox, so a kernel or container that forbids namespaces is found at start."""
    args = [userland.bwrap, *_namespaces(), "--tmpfs", "/", *_libraries(userland), "--ro-bind", str(userland.mksh),
            "/system/bin/sh", "--remount-ro", "/", "--clearenv", "/system/bin/sh", "-c", "exit 0"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        reason = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise SandboxUnavailable(f"cannot confine simulated phones: bubblewrap failed ({reason[:160]}); it needs "
                                 "unprivileged user namespaces (or root)")


def install(userland: Userland, system_bin: Path, own: set[str]) -> None:
    """Put the shell (mksh as sh), toybox and its applets into a phone's /system/bin; `own` names the tools the
    simulator provides itself, which toybox must not shadow."""
    system_bin.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(userland.mksh, system_bin / "sh")
    shutil.copyfile(userland.toybox, system_bin / "toybox")
    for name in ("sh", "toybox"):
        (system_bin / name).chmod(0o755)
    for applet in userland.applets:
        link = system_bin / applet
        if applet not in own and applet not in ("sh", "toybox") and not link.is_symlink():
            link.symlink_to("toybox")


def shell_command(userland: Userland, sandbox: Path, socket_dir: Path, command: str) -> list[str]:
    """The argv that runs `command` with the phone's shell inside its sandbox."""
    env = {"PATH": PATH, "ANDROID_DATA": "/data", "ANDROID_ROOT": "/system", "HOME": "/", "TMPDIR": "/data/local/tmp",
           "USER": "shell", "LOGNAME": "shell", "SHELL": "/bin/sh"}
    return [userland.bwrap, *_namespaces(), "--hostname", "localhost", "--tmpfs", "/",
            "--ro-bind", str(sandbox / "system"), "/system", "--symlink", "/system/bin", "/bin",
            "--bind", str(sandbox / "data"), "/data", "--bind", str(sandbox / "sdcard"), "/sdcard",
            "--ro-bind", str(sandbox / "sys"), "/sys", *_libraries(userland),
            "--proc", "/proc", "--dev", "/dev", "--ro-bind", str(socket_dir), SOCKET_DIR,
            "--remount-ro", "/", "--chdir", "/", "--clearenv",
            *[a for k, v in env.items() for a in ("--setenv", k, v)],
            "/system/bin/sh", "-c", command]


def tool_command(userland: Userland, read_only: list[Path], writable: list[Path], argv: list[str]) -> list[str]:
    """The argv that runs a host program (the simulated benchmark_model) confined as the module docstring says:
    `read_only` and `writable` are host directories it may use besides the system ones."""
    system = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            system += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            system += ["--ro-bind", top, top]
    own = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parent.parent, *read_only}
    binds = [a for d in sorted(own) if not str(d).startswith("/usr/") for a in ("--ro-bind", str(d), str(d))]
    binds += [a for d in writable for a in ("--bind", str(d), str(d))]
    return [userland.bwrap, *_namespaces(), "--tmpfs", "/", *system, "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp", *binds, "--remount-ro", "/", "--chdir", "/tmp", "--", *argv]


def _namespaces() -> list[str]:
    return ["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--uid", str(SHELL_UID), "--gid", str(SHELL_UID), "--cap-drop", "ALL",
            "--die-with-parent", "--new-session"]


def _libraries(userland: Userland) -> list[str]:
    return [a for lib in userland.libraries for a in ("--ro-bind", str(lib), str(lib))]
