"""The simulated benchmark_model's way out of a phone's sandbox: a Unix socket in the phone's /dev/socket.

On a simulated phone, benchmark_model is a small mksh script (devicefs.benchmark_client) that sends its working
directory, the taskset core mask and its arguments to this service with toybox ``nc -U``, and prints what comes
back. The service runs the simulation (benchmark_model.py, which needs the host's LiteRT) as a host process
outside the phone's sandbox, in a confined one of its own (sandbox.tool_command). It hands that process the model
as a file descriptor opened inside the phone's tree (paths.locate), so a symlink on the phone cannot make it read
a host file, and streams its stdout and stderr
back line by line, then its exit code (128 + N for a process killed by signal N, as a shell reports it). When
the client goes away (its shell command was killed), the simulation is killed too.

With an external benchmark binary (SimulatedFarm(benchmark_binary=...)), the service runs that host executable
instead, confined the same way and with the same arguments, except that its --graph names the open model
(/proc/self/fd/N); the phone counts as busy (heating) while it runs.

Lines of the exchange: request ``argv0 PATH``, ``cwd DIR``, ``cores MASK``, ``arg VALUE``..., ``end``; reply
``1 TEXT`` (stdout), ``2 TEXT`` (stderr), ``x CODE``.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import select
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import elasticvit_deploy

from .paths import locate
from .processes import Processes, kill_group
from .sandbox import BENCHMARK_SOCKET, Userland, tool_command
from .thermal import Thermal
from .tool_flags import graph_argument

TOOL = "from elasticvit_deploy.simulator.benchmark_model import cli; cli()"
MAX_REQUEST_LINES = 256
MAX_LINE = 4096


class BenchmarkService:
    """Serves the simulated benchmark_model of one phone on `socket_dir/evd-benchmark`."""

    def __init__(self, sandbox: Path, state_dir: Path, host_timings: Path, userland: Userland,
                 processes: Processes, thermal: Thermal, benchmark_binary: Path | None = None,
                 table: Path | None = None) -> None:
        self.sandbox = sandbox
        self.state_dir = state_dir
        self.host_timings = host_timings
        self.userland = userland
        self.processes = processes
        self.thermal = thermal
        self.benchmark_binary = benchmark_binary
        self.table = table  # the twin's table file, readable by the simulated tool (twin.py)
        self.completed = 0  # runs on a model that ended by themselves with exit 0 (what the phone finished)
        self._count_lock = threading.Lock()
        # a short path of its own: Unix socket paths are limited to 108 bytes
        self.socket_dir = Path(tempfile.mkdtemp(prefix="evd-sock-"))
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.socket_dir / BENCHMARK_SOCKET))
        self._listener.listen(16)
        self._thread = threading.Thread(target=self._accept, name=f"benchmark-{sandbox.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting (running simulations are killed by the phone's process list)."""
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._thread.join()
        shutil.rmtree(self.socket_dir, ignore_errors=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                request = _read_request(conn)
            except (OSError, ValueError) as e:
                _send(conn, f"2 ERROR: {e}\nx 1\n")
                return
            if request is not None:
                self._run(conn, *request)

    def _run(self, conn: socket.socket, argv0: str, cwd: str, cores: str, args: list[str]) -> None:
        model_fd = self._open_model(cwd, args)
        model = None if model_fd is None else f"/proc/self/fd/{model_fd}"
        argv, env = self._external(args, model) if self.benchmark_binary else self._builtin(argv0, cores, args, model)
        try:
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=() if model_fd is None else (model_fd,),
                                    start_new_session=True)
        finally:
            if model_fd is not None:
                os.close(model_fd)
        busy = self.thermal.busy(proc.pid) if self.benchmark_binary else contextlib.nullcontext()
        with proc, self.processes.tracking(proc), busy:
            if _pump(conn, proc):
                code = proc.wait()
                if code == 0 and model is not None:
                    with self._count_lock:
                        self.completed += 1
                _send(conn, f"x {128 - code if code < 0 else code}\n")
            else:
                kill_group(proc)
                proc.wait()

    def _builtin(self, argv0: str, cores: str, args: list[str], model: str | None) -> tuple[list[str], dict[str, str]]:
        """The simulated benchmark_model's command line and environment."""
        project = Path(elasticvit_deploy.__file__).resolve().parent.parent
        env = {**os.environ, "EVD_SIM_STATE": str(self.state_dir), "EVD_SIM_CORES": cores, "EVD_SIM_ARGV0": argv0,
               "PYTHONPATH": str(project), "HOME": "/tmp", "TMPDIR": "/tmp"}
        env.pop("EVD_SIM_MODEL", None)
        if model is not None:
            env["EVD_SIM_MODEL"] = model
        self.host_timings.mkdir(parents=True, exist_ok=True)
        argv = tool_command(self.userland, [project, *([self.table] if self.table else [])],
                            [self.state_dir, self.host_timings, self.sandbox / "sys"],
                            [sys.executable, "-c", TOOL, *args])
        return argv, env

    def _external(self, args: list[str], model: str | None) -> tuple[list[str], dict[str, str]]:
        """The external binary's command line (its --graph rewritten to the open model) and a bare environment."""
        assert self.benchmark_binary is not None
        at = graph_argument(args)
        if at is not None and model is not None:
            args = [*args[:at], f"--graph={model}", *args[at + 1:]]
        binary = str(self.benchmark_binary)
        argv = tool_command(self.userland, [self.benchmark_binary], [], [binary, *args])
        return argv, {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}

    def _open_model(self, cwd: str, args: list[str]) -> int | None:
        """The --graph file, opened read-only inside the phone's tree; None if there is none to open."""
        at = graph_argument(args)
        graph = args[at].removeprefix("--graph=") if at is not None else ""
        if not graph:
            return None
        try:
            with locate(self.sandbox, posixpath.join(cwd or "/", graph)) as loc:
                fd = loc.open(os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, ValueError):
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        return fd


def _read_request(conn: socket.socket) -> tuple[str, str, str, list[str]] | None:
    """(argv0, cwd, cores, args) from the client's lines; None if it hung up before `end`."""
    argv0, cwd, cores = "benchmark_model", "/", ""
    args: list[str] = []
    reader = conn.makefile("rb")
    for _ in range(MAX_REQUEST_LINES):
        raw = reader.readline(MAX_LINE + 1)
        if not raw:
            return None
        if not raw.endswith(b"\n"):
            raise ValueError("benchmark_model request line too long")
        key, _, value = raw[:-1].decode("utf-8", "surrogateescape").partition(" ")
        if key == "end":
            return argv0, cwd, cores, args
        if key == "argv0":
            argv0 = value
        elif key == "cwd":
            cwd = value
        elif key == "cores":
            if value and not value.isdigit():
                raise ValueError(f"bad core mask {value[:20]!r}")
            cores = value
        elif key == "arg":
            args.append(value)
        else:
            raise ValueError(f"bad benchmark_model request line {key[:20]!r}")
    raise ValueError("benchmark_model request too long")


def _pump(conn: socket.socket, proc: subprocess.Popen[bytes]) -> bool:
    """Forward the simulation's output as tagged lines until it ends; False if the client went away first (its
    end of the socket closed: poll reports a hang-up, which a mere half-close after the request is not)."""
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): 1, proc.stderr.fileno(): 2}
    partial = {1: b"", 2: b""}
    poller = select.poll()
    for fd in streams:
        poller.register(fd, select.POLLIN)
    poller.register(conn, 0)  # hang-ups and errors are always reported
    while streams:
        for fd, _events in poller.poll():
            if fd == conn.fileno():
                return False
            tag = streams[fd]
            data = os.read(fd, 1 << 16)
            if not data:
                poller.unregister(fd)
                del streams[fd]
                data, partial[tag] = partial[tag] + b"\n" if partial[tag] else b"", b""
            else:
                data, partial[tag] = _split(partial[tag] + data)
            if data and not _send(conn, b"".join(b"%d %s\n" % (tag, line) for line in data.splitlines())):
                return False
    return True


def _split(buf: bytes) -> tuple[bytes, bytes]:
    """(complete lines, the unfinished rest)."""
    cut = buf.rfind(b"\n") + 1
    return buf[:cut], buf[cut:]


def _send(conn: socket.socket, data: str | bytes) -> bool:
    try:
        conn.sendall(data.encode() if isinstance(data, str) else data)
    except OSError:
        return False
    return True
