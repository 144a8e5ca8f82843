"""Peer checks of the simulated adb server: the client calls adbutils' own end-to-end tests make against a real
phone, and the same operations through Debian's `adb` client, must work against `farm simulate`.

adbutils' e2etests (github.com/openatx/adbutils, e2etests/ at commit 7c43ec68452ff30ef350210ac4fd0429a68758d6; they
need a real phone and are not shipped in the sdist, so the calls they make are exercised here, not their code):
  - test_adb.py: server_version, disconnect(raise_error=True), wait_for (disconnect; usb device; usb disconnect
    timing out), track_devices.
  - test_device_base.py: shell (echo -n of odd strings, pwd with rstrip=False, encoding=None), shell2 (bytes output;
    output, returncode and command of `echo -n 'hello'; false`), open_shell().read_until_close(), shell timeout,
    get_serialno, get_state, device(transport_id=...) with sync.list and forward_list.
  - test_forward_reverse.py: forward, forward_list, forward_port, reverse, reverse_list.
  - test_device_sync.py: `adb push` of a directory tree (adb_output), sync.pull_dir and sync.pull of it.
  - test_device_shell_extend.py: battery, sync push/read_bytes/read_text/pull/pull_file/iter_content on a non-ASCII
    path, push into a directory (a stream is refused, a file lands inside), remove, exists, rmtree.
  - test_deprecated.py: AdbClient.shell(serial, "pwd").
Not exercised, as the simulated phones have no apps, screen, input, logd or network interfaces: test_keyevent,
test_brightness, test_switch_screen, test_switch_airplane, test_switch_wifi, test_swipe, test_drag, test_click,
test_send_keys, test_wlan_ip, test_app_start_stop, test_screenshot, test_app_info, test_window_size,
test_is_screen_on, test_open_browser, test_dump_hierarchy, test_logcat, test_framebuffer (test_device_base.py),
test_package_info and test_current_app (test_deprecated.py), test_screenrecord (test_record.py); test_import.py and
test_utils.py test adbutils alone, without a server.
"""

from __future__ import annotations

import filecmp
import io
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import adbutils
import pytest
from adbutils.errors import AdbSyncError

from elasticvit_deploy.simulator import SimulatedFarm

from .procs import adb_servers

TS = 0.01
DEBIAN_ADB = shutil.which("adb", path="/usr/bin:/usr/lib/android-sdk/platform-tools")


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


@pytest.fixture(scope="module")
def farm():
    with SimulatedFarm(["pixel4"], time_scale=TS) as f:
        yield f


@pytest.fixture()
def client(farm) -> adbutils.AdbClient:
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port)


@pytest.fixture()
def device(client) -> adbutils.AdbDevice:
    return client.device()  # the only phone, as the e2etests' conftest picks it




def _tree(root: Path) -> None:
    """local_src_in_dir of the e2etests' conftest: files in nested directories, one of them empty."""
    for rel, text in (("1.txt", "1\n"), ("2.txt", "2\n"), ("a/a1.txt", "a1\n"), ("a/aa/aa1.txt", "aa1\n"),
                      ("a/ab/ab1.txt", "ab1\n"), ("a/ab/ab2.txt", "ab2\n"), ("b/b1.txt", "b1\n"),
                      ("c/ca/ca1.txt", "ca1\n"), ("c/ca/caa/caa1.txt", "caa1\n")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "c/cb").mkdir()


def _same_files(left: Path, right: Path) -> bool:
    """Same names and contents of the regular files below both (adb does not push empty directories)."""
    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    names = files(left)
    return names == files(right) and all(filecmp.cmp(left / n, right / n, shallow=False) for n in names)


# adbutils e2etests: test_adb.py ---------------------------------------------------------------------------------
def test_e2e_adb_server(client):
    assert isinstance(client.server_version(), int)
    with pytest.raises(adbutils.AdbError):
        client.disconnect("127.0.0.1:1234", raise_error=True)
    client.wait_for("127.0.0.1:1234", state="disconnect", timeout=1)
    client.wait_for(transport="usb", state="device", timeout=1)
    with pytest.raises(adbutils.AdbTimeout):
        client.wait_for(transport="usb", state="disconnect", timeout=.5)
    assert isinstance(next(client.track_devices()), adbutils.DeviceEvent)


# test_device_base.py -----------------------------------------------------------------------------------------------
def test_e2e_device_shell(device, client):
    for text in ("foo", "?", "&", "but    123"):
        assert device.shell(["echo", "-n", text]) == text
    assert device.shell("pwd", rstrip=False) in ["/\n", "/\r\n"]
    assert device.shell("echo -n hello", encoding=None) == b"hello"
    assert device.shell2("echo -n hello", encoding=None).output == b"hello"
    assert device.open_shell("echo -n 'hello world'").read_until_close() == "hello world"
    with pytest.raises(adbutils.AdbTimeout):
        device.shell("sleep 10", timeout=1.0)
    cmd = "echo -n 'hello'; false"
    res = device.shell2(cmd)
    assert (res.output, res.returncode, res.command) == ("hello", 1, cmd)
    assert device.get_serialno() and device.get_state() == "device"
    transport_id = client.list(extended=True)[0].transport_id
    dev = client.device(transport_id=transport_id)
    assert isinstance(dev.sync.list("/data/local/tmp"), list)
    assert isinstance(dev.forward_list(), list)
    with pytest.warns(DeprecationWarning):  # test_deprecated.py: the old AdbClient.shell still answers
        assert client.shell(device.serial, "pwd").rstrip() == "/"


# test_forward_reverse.py -------------------------------------------------------------------------------------------
def test_e2e_forward_reverse(device):
    device.forward("tcp:11221", "tcp:7912")
    assert any(i.local == "tcp:11221" and i.remote == "tcp:7912" and i.serial == device.serial
               for i in device.forward_list())
    assert isinstance(device.forward_port("tcp:7912"), int)
    device.reverse("tcp:12345", "tcp:4000")
    assert any(i.remote == "tcp:12345" and i.local == "tcp:4000" for i in device.reverse_list())
    device.forward_remove_all()


# test_device_sync.py -------------------------------------------------------------------------------------------------
@pytest.mark.skipif(DEBIAN_ADB is None, reason="Debian's adb is not installed (scripts/setup.sh: apt-get install adb)")
def test_e2e_push_dir_then_pull_dir(device, farm, tmp_path, monkeypatch):
    local = tmp_path / "src"
    _tree(local)
    monkeypatch.setenv("ADBUTILS_ADB_PATH", DEBIAN_ADB)  # adb_output runs the adb client ...
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(farm.port))  # ... against the simulated server
    monkeypatch.setenv("HOME", str(tmp_path))
    before = adb_servers()
    try:
        device.adb_output("push", str(local), "/sdcard/test_d")
        device.sync.pull_dir("/sdcard/test_d", tmp_path / "dir1")
        device.sync.pull("/sdcard/test_d", tmp_path / "dir2")
        assert _same_files(local, tmp_path / "dir1") and _same_files(local, tmp_path / "dir2")
    finally:
        device.rmtree("/sdcard/test_d")
    assert adb_servers() <= before


# test_device_shell_extend.py (what needs no screen, apps or input) ------------------------------------------------
def test_e2e_battery_sync_and_files(device, tmp_path):
    assert device.battery().level == 85
    path = "/data/local/tmp/Hi-世界.txt"
    try:
        device.sync.push(io.BytesIO(b"Hello 1"), path)
        assert device.sync.read_bytes(path) == b"Hello 1"
        device.sync.push(b"Hello 12", path)
        assert device.sync.read_text(path) == "Hello 12"
        src = tmp_path / "hi.txt"
        src.write_text("Hello Android")
        device.sync.push(src, path)
        assert device.sync.read_text(path) == "Hello Android"
        device.sync.pull(path, tmp_path / "dst.txt")
        device.sync.pull_file(path, tmp_path / "dst2.txt")
        assert (tmp_path / "dst.txt").read_text() == (tmp_path / "dst2.txt").read_text() == "Hello Android"
        assert b"".join(device.sync.iter_content(path)) == b"Hello Android"
    finally:
        device.remove(path)
    assert not device.sync.exists(path)
    folder = "/data/local/tmp/adbutils-test"
    device.shell(f"mkdir -p {folder}")
    try:
        with pytest.raises(AdbSyncError):
            device.sync.push(io.BytesIO(b"random"), folder)
        (tmp_path / "random.txt").write_bytes(b"random")
        assert device.sync.push(tmp_path / "random.txt", folder) == 6
        assert device.sync.read_bytes(folder + "/random.txt") == b"random"
    finally:
        device.rmtree(folder)
    device.shell(["touch", "/data/local/tmp/touch.txt"])
    assert device.sync.exists("/data/local/tmp/touch.txt")
    device.remove("/data/local/tmp/touch.txt")
    assert not device.sync.exists("/data/local/tmp/touch.txt")


# Debian's adb client -----------------------------------------------------------------------------------------------
class _Adb:
    """Debian's adb client against the simulated server: -P to its port, a private HOME, never a server of its own
    (no kill-server, no start-server)."""

    def __init__(self, port: int, home: Path) -> None:
        self.port = port
        self.env = {k: v for k, v in os.environ.items() if k not in ("ADB_SERVER_SOCKET", "ANDROID_ADB_SERVER_PORT",
                                                                      "ANDROID_SERIAL")}
        self.env["HOME"] = str(home)

    def argv(self, *args: str) -> list[str]:
        assert DEBIAN_ADB is not None and "kill-server" not in args and "start-server" not in args
        return [DEBIAN_ADB, "-P", str(self.port), *args]

    def __call__(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, input=stdin.decode(), capture_output=True, text=True,
                              timeout=30, check=False)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(*args), env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)


def _read_until(proc: subprocess.Popen[bytes], expected: bytes, timeout: float = 10) -> bytes:
    """Read the process's stdout until `expected` shows up (or the time is up)."""
    assert proc.stdout is not None
    seen, deadline = b"", time.monotonic() + timeout
    while expected not in seen and time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
    return seen


@pytest.mark.skipif(DEBIAN_ADB is None, reason="Debian's adb is not installed (scripts/setup.sh: apt-get install adb)")
def test_debian_adb_client(tmp_path):
    before = adb_servers()
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS, serials=["sim-usb", "192.168.1.20:5555"]) as farm:
        adb = _Adb(farm.port, tmp_path)
        listing = adb("devices", "-l")
        assert listing.returncode == 0 and "daemon" not in listing.stderr, listing.stderr
        assert [line.split() for line in listing.stdout.splitlines()[1:3]] == [
            ["sim-usb", "device", "usb:1-1", "product:sailfish", "model:Pixel", "device:sailfish", "transport_id:1"],
            ["192.168.1.20:5555", "device", "product:flame", "model:Pixel_4", "device:flame", "transport_id:2"]]
        r = adb("-s", "sim-usb", "shell", "cat", stdin=b"x\n")
        assert (r.returncode, r.stdout) == (0, "x\n")
        r = adb("-s", "192.168.1.20:5555", "shell", "echo oops >&2; exit 4")
        assert (r.returncode, r.stderr) == (4, "oops\n")
        login = adb("-s", "sim-usb", "shell", stdin=b"echo from-stdin $0; exit 3\n")  # no command: a login shell
        assert (login.returncode, login.stdout) == (3, "from-stdin -/system/bin/sh\n")
        assert adb("-s", "sim-usb", "get-state").stdout == "device\n"
        assert adb("-s", "192.168.1.20:5555", "get-devpath").stdout == "unknown\n"

        tree = tmp_path / "tree"
        (tree / "sub").mkdir(parents=True)
        (tree / "sub/f.txt").write_text("hello\n")
        (tree / "link").symlink_to("sub/f.txt")
        assert adb("-s", "sim-usb", "push", str(tree), "/data/local/tmp/tree").returncode == 0
        assert adb("-s", "sim-usb", "shell", "readlink /data/local/tmp/tree/link").stdout == "sub/f.txt\n"
        assert os.readlink(farm.phone("sim-usb").sandbox / "data/local/tmp/tree/link") == "sub/f.txt"
        assert adb("-s", "sim-usb", "pull", "/data/local/tmp/tree", str(tmp_path / "back")).returncode == 0
        assert (tmp_path / "back/link").read_text() == "hello\n"  # pulled through the link, as a file

        port = adb("-s", "sim-usb", "forward", "tcp:0", "tcp:7912").stdout.strip()
        assert adb("forward", "--list").stdout == f"sim-usb tcp:{port} tcp:7912\n\n"  # the list, then a newline
        assert adb("-s", "sim-usb", "reverse", "tcp:5000", "tcp:6000").returncode == 0
        assert adb("-s", "sim-usb", "reverse", "--list").stdout == "UsbFfs tcp:5000 tcp:6000\n\n"

        root = adb("-s", "sim-usb", "root")
        assert (root.returncode, root.stdout) == (0, "adbd cannot run as root in production builds\n")
        assert adb("-s", "sim-usb", "remount").stdout == 'Not running as root. Try "adb root" first.\n'

        farm.phone("sim-usb").set_fault("offline")
        assert adb("-s", "sim-usb", "get-state").stderr == "error: device offline\n"
        assert adb("-s", "sim-usb", "reconnect").stdout == "reconnecting sim-usb [offline]\n\n"
        assert adb("-s", "sim-usb", "wait-for-device").returncode == 0
        assert adb("-s", "sim-usb", "get-state").stdout == "device\n"
        assert adb("forward", "--list").stdout == "\n"  # the reconnected phone's forward went with it

        assert adb("connect", "10.0.0.9").stdout == "failed to connect to '10.0.0.9:5555': Connection refused\n"
        assert adb("disconnect", "192.168.1.20:5555").stdout == "disconnected 192.168.1.20:5555\n"
        assert adb("connect", "192.168.1.20").stdout == "connected to 192.168.1.20:5555\n"

        tracker = adb.start("track-devices")
        waiter = adb.start("-s", "192.168.1.20:5555", "wait-for-disconnect")
        try:
            first = _read_until(tracker, b"5555\tdevice\n")
            assert first.endswith(b"sim-usb\tdevice\n192.168.1.20:5555\tdevice\n"), first
            farm.unplug("192.168.1.20:5555")
            assert waiter.wait(timeout=10) == 0
            assert _read_until(tracker, b"000fsim-usb\tdevice\n").endswith(b"000fsim-usb\tdevice\n")
        finally:
            for proc in (tracker, waiter):
                proc.terminate()
                proc.wait(timeout=10)
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
    assert adb_servers() <= before  # no real adb server was started


@pytest.mark.skipif(DEBIAN_ADB is None, reason="Debian's adb is not installed (scripts/setup.sh: apt-get install adb)")
def test_debian_adb_on_a_phone_without_shell_v2(tmp_path):
    with SimulatedFarm(["pixel4"], time_scale=TS, quirks=["shell-v1"]) as farm:
        adb = _Adb(farm.port, tmp_path)
        assert adb("features").stdout == ""  # an old adbd announces no features
        r = adb("shell", "read line; echo got $line", stdin=b"x\n")
        assert (r.returncode, r.stdout) == (0, "got x\n")
        r = adb("shell", "echo out; echo err >&2; exit 4")
        assert (r.returncode, r.stdout) == (0, "out\nerr\n")  # no shell protocol: one stream, no exit code
