"""The simulated adb server answers the host and device services real clients send, as the real server and adbd
answer them (packages/modules/adb: adb.cpp, services.cpp, sockets.cpp, transport.cpp, adb_listeners.cpp,
daemon/services.cpp, daemon/shell_service.cpp, daemon/file_sync_service.cpp, daemon/restart_service.cpp)."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading

import adbutils
import pytest

from elasticvit_deploy.simulator import SimulatedFarm, SimulationError
from elasticvit_deploy.simulator.protocol import parse_host_service

from .procs import sleepers, wait_until

TS = 0.01


@pytest.fixture(autouse=True)
def _no_real_adb_server(monkeypatch):
    monkeypatch.setenv("ADBUTILS_ADB_PATH", "/bin/false")


def client(farm: SimulatedFarm) -> adbutils.AdbClient:
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port)


def connect(farm: SimulatedFarm) -> adbutils.AdbConnection:
    return client(farm).make_connection(timeout=10)


def ask(farm: SimulatedFarm, service: str) -> str:
    """OKAY and a string (or AdbError with the FAIL text)."""
    with connect(farm) as c:
        c.send_command(service)
        c.check_okay()
        return c.read_string_block()


def failure(farm: SimulatedFarm, service: str) -> str:
    with connect(farm) as c:
        c.send_command(service)
        assert c.read(4) == b"FAIL"
        return c.read_string_block()


def on_phone(farm: SimulatedFarm, serial: str, service: str) -> adbutils.AdbConnection:
    """A connection switched to the phone, with `service` sent and its OKAY read."""
    c = client(farm).device(serial).open_transport(timeout=10)
    c.send_command(service)
    c.check_okay()
    return c


def packet(packet_id: int, data: bytes = b"") -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data


def read_v2(c: adbutils.AdbConnection) -> tuple[bytes, bytes, int]:
    out, err = b"", b""
    while True:
        packet_id, length = struct.unpack("<BI", c.read(5))
        data = c.read(length)
        if packet_id == 1:
            out += data
        elif packet_id == 2:
            err += data
        elif packet_id == 3:
            return out, err, data[0]






def test_host_serial_parsing_follows_the_real_server():
    cases = {
        "sim-pixel4-1:get-state": ("sim-pixel4-1", "get-state"),
        "192.168.1.20:5555:get-state": ("192.168.1.20:5555", "get-state"),
        "192.168.1.20:5555:forward:tcp:1;tcp:2": ("192.168.1.20:5555", "forward:tcp:1;tcp:2"),
        "tcp:192.168.1.20:5555:features": ("tcp:192.168.1.20:5555", "features"),
        "[::1]:5555:get-state": ("[::1]:5555", "get-state"),
        "model:Pixel_4:get-serialno": ("model:Pixel_4", "get-serialno"),
        "usb:1-2:get-state": ("usb:1-2", "get-state"),
        "emulator-5554:wait-for-any-device": ("emulator-5554", "wait-for-any-device"),
    }
    for text, expected in cases.items():
        assert parse_host_service(text) == expected, text
    for bad in ("", "no-colon", "[::1]x:get-state", "serial:", "tcp:"):
        assert parse_host_service(bad) is None, bad


def test_shell_stdin_v2_v1_and_exec():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        serial = farm.serials[0]
        c = on_phone(farm, serial, "shell,v2,raw:cat; echo rc=$?")
        c.send(packet(5, b"24x80,0x0\0"))  # window size: ignored
        c.send(packet(0, b"hello "))
        c.send(packet(0, b"world\n"))
        c.send(packet(4))  # close stdin: cat ends
        assert read_v2(c) == (b"hello world\nrc=0\n", b"", 0)
        c.close()
        big = os.urandom(300_000)
        c = on_phone(farm, serial, "shell,v2:cat > /data/local/tmp/big; wc -c < /data/local/tmp/big")
        for i in range(0, len(big), 70_000):
            c.send(packet(0, big[i:i + 70_000]))
        c.send(packet(4))
        out, _, code = read_v2(c)
        assert (out.strip(), code) == (b"300000", 0)
        assert (farm.phone(serial).sandbox / "data/local/tmp/big").read_bytes() == big
        c.close()
        c = on_phone(farm, serial, "exec:head -c 5; echo; echo done")
        c.send(b"abcdefgh")
        assert c.read_until_close() == "abcde\ndone\n"
        c = on_phone(farm, serial, "shell:read line; echo got $line")
        c.send(b"x y\n")
        assert c.read_until_close() == "got x y\n"
        r = client(farm).device(serial).shell2("echo ignores stdin", v2=True)
        assert (r.stdout, r.returncode) == ("ignores stdin\n", 0)


def test_disconnect_sends_sighup_to_the_shell():
    """adbd sends SIGHUP to the process it started when the client goes away; a v1 half-close counts, since the
    real server turns a client's end of file into closing the stream."""
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        serial = farm.serials[0]
        tmp = farm.phone(serial).sandbox / "data/local/tmp"
        for service, name in (("shell,v2", "v2"), ("shell", "v1"), ("exec", "exec")):
            c = on_phone(farm, serial, f"{service}:trap 'echo hup > /data/local/tmp/{name}; exit 0' HUP; "
                                       f"touch /data/local/tmp/{name}.started; while :; do sleep 0.05; done")
            assert wait_until((tmp / f"{name}.started").exists)
            if name == "v2":
                c.close()
            else:
                c.conn.shutdown(socket.SHUT_WR)
                assert c.conn.recv(1) == b""  # the stream is closed: nothing more comes
                c.close()
            assert wait_until(lambda name=name: (tmp / name).exists() and (tmp / name).read_text() == "hup\n"), name


def test_a_command_ignoring_sighup_is_killed_after_a_grace_period():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        serial = farm.serials[0]
        c = on_phone(farm, serial, "shell,v2:trap '' HUP; touch /data/local/tmp/s; exec sleep 31338")
        assert wait_until(lambda: bool(sleepers("31338")))
        c.close()
        assert wait_until(lambda: not sleepers("31338"))


def test_a_client_leaving_a_command_that_does_not_read_its_input_hangs_it_up():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        c = on_phone(farm, farm.serials[0], "shell,v2:exec sleep 31339")
        assert wait_until(lambda: bool(sleepers("31339")))
        c.conn.setblocking(False)
        try:
            c.conn.send(packet(0, b"x" * 2_000_000))  # more than the pipe and the sockets hold
        except BlockingIOError:
            pass
        c.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.conn.close()  # a reset: the client is gone with input still unsent
        assert wait_until(lambda: not sleepers("31339"))


def test_track_devices_reports_every_change():
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS) as farm:
        p1, p4 = farm.serials
        c = connect(farm)
        c.send_command("host:track-devices")
        c.check_okay()
        assert c.read_string_block() == f"{p1}\tdevice\n{p4}\tdevice\n"
        farm.unplug(p4)
        assert c.read_string_block() == f"{p1}\tdevice\n"
        assert [d.serial for d in client(farm).list()] == [p1]
        farm.phone(p1).set_fault("offline")
        assert c.read_string_block() == f"{p1}\toffline\n"
        farm.plug(p4)
        assert c.read_string_block() == f"{p1}\toffline\n{p4}\tdevice\n"
        c.close()
        long = connect(farm)
        long.send_command("host:track-devices-l")
        long.check_okay()
        first = long.read_string_block().splitlines()
        assert first[1].split() == [p4, "device", "usb:1-2", "product:flame", "model:Pixel_4", "device:flame",
                                    "transport_id:3"]  # a replugged phone gets a new transport id
        long.close()
        events = client(farm).track_devices()
        assert {(e.present, e.serial, e.status) for e in [next(events), next(events)]} == {
            (True, p1, "offline"), (True, p4, "device")}
        farm.unplug(p1)
        assert next(events) == adbutils.DeviceEvent(False, p1, "absent")
        with pytest.raises(ValueError, match="unplugged already"):
            farm.unplug(p1)


def test_forward_table_and_listeners():
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS) as farm:
        p1, p4 = farm.serials
        with connect(farm) as c:
            c.send_command(f"host-serial:{p4}:forward:tcp:0;tcp:7912")
            c.check_okay()
            c.check_okay()
            port = int(c.read_string_block())
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            assert s.recv(1) == b""  # nothing listens on the phone: the server closes the connection
        client(farm).device(p1).forward("tcp:0", "localabstract:scrcpy")
        items = client(farm).forward_list()
        assert items[0] == adbutils.ForwardItem(p4, f"tcp:{port}", "tcp:7912")
        assert items[1].serial == p1 and items[1].remote == "localabstract:scrcpy"
        assert failure(farm, f"host-serial:{p4}:forward:norebind:tcp:{port};tcp:1") == "cannot rebind existing socket"
        with connect(farm) as c:  # rebinding moves the forward to another phone
            c.send_command(f"host-serial:{p1}:forward:tcp:{port};tcp:1")
            c.check_okay()
            c.check_okay()
        assert ask(farm, "host:list-forward").splitlines()[0] == f"{p1} tcp:{port} tcp:1"
        assert failure(farm, f"host-serial:{p4}:forward:tcp:1") == "bad forward: tcp:1"
        assert failure(farm, f"host-serial:{p4}:forward:localreserved:x;tcp:1") == (
            "cannot bind listener: attempted to listen on unavailable socket type: localreserved:x")
        assert failure(farm, f"host-serial:{p4}:forward:bogus:x;tcp:1") == (
            "cannot bind listener: unknown socket specification:bogus:x")
        assert failure(farm, "host-serial:nope:forward:tcp:0;tcp:1") == ""  # the real server drops this text
        client(farm).device(p4).forward_remove(f"tcp:{port}")
        assert failure(farm, f"host-serial:{p4}:killforward:tcp:{port}") == f"listener 'tcp:{port}' not found"
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5)
        farm.unplug(p1)  # a phone's forwards go with it
        assert ask(farm, "host:list-forward") == ""
        client(farm).device(p4).forward("tcp:0", "tcp:1")
        client(farm).device(p4).forward_remove_all()
        assert client(farm).forward_list() == []


def test_reverse_table_on_the_phone():
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        dev = client(farm).device(farm.serials[0])
        dev.reverse("tcp:12345", "tcp:4000")
        assert dev.reverse_list() == [adbutils.ReverseItem("tcp:12345", "tcp:4000")]
        with on_phone(farm, farm.serials[0], "reverse:forward:tcp:0;localabstract:x") as c:
            c.check_okay()
            port = int(c.read_string_block())
        assert 32768 <= port <= 60999
        with on_phone(farm, farm.serials[0], "reverse:list-forward") as c:
            assert c.read_string_block() == f"UsbFfs tcp:12345 tcp:4000\nUsbFfs tcp:{port} localabstract:x\n"
        with on_phone(farm, farm.serials[0], "reverse:forward:norebind:tcp:12345;tcp:1") as c:
            assert c.read(4) == b"FAIL" and c.read_string_block() == "cannot rebind existing socket"
        with on_phone(farm, farm.serials[0], "reverse:something") as c:
            assert c.read(4) == b"FAIL" and c.read_string_block() == "not a reverse forwarding command"
        dev.reverse_remove("tcp:12345")
        with pytest.raises(adbutils.AdbError, match="listener 'tcp:12345' not found"):
            dev.reverse_remove("tcp:12345")
        assert [r.remote for r in dev.reverse_list()] == [f"tcp:{port}"]
        dev.reverse_remove_all()
        assert dev.reverse_list() == []


def test_wait_for_states_and_disconnect():
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS) as farm:
        p1, p4 = farm.serials
        c = client(farm)
        with pytest.raises(adbutils.AdbError, match="more than one USB device"):
            c.wait_for(transport="usb", state="device", timeout=5)
        c.wait_for(p1, state="device", timeout=5)
        c.wait_for("127.0.0.1:1234", state="disconnect", timeout=5)
        errors: list[BaseException] = []

        def wait_gone() -> None:
            try:
                c.wait_for(p4, state="disconnect", timeout=10)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        waiter = threading.Thread(target=wait_gone)
        waiter.start()
        farm.unplug(p4)
        waiter.join(timeout=10)
        assert not waiter.is_alive() and errors == []
        c.wait_for(transport="usb", state="device", timeout=5)  # one USB phone left
        with connect(farm) as conn:
            conn.send_command("host:wait-for-usb-nothing")
            conn.check_okay()
            assert conn.read(4) == b"FAIL" and conn.read_string_block() == "bad wait-for- state: usb-nothing"


def test_reconnect_clears_offline_like_a_replug():
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS) as farm:
        p1, p4 = farm.serials
        c = client(farm)
        farm.phone(p1).set_fault("offline")
        assert ask(farm, f"host-serial:{p1}:reconnect") == f"reconnecting {p1} [offline]\n"
        assert wait_until(lambda: [(d.serial, d.state) for d in c.list()] == [(p1, "device"), (p4, "device")])
        assert c.list(extended=True)[0].transport_id == 3  # re-enumerated
        assert c.device(p1).shell("echo back") == "back"
        farm.phone(p4).set_fault("unauthorized")
        assert ask(farm, "host:reconnect-offline") == f"reconnecting {p4}"
        assert wait_until(lambda: [d.transport_id for d in c.list(extended=True)] == [3, 4])
        assert c.list()[1].state == "unauthorized"  # a replug does not authorize the host
        assert ask(farm, "host-serial:nope:reconnect") == "device 'nope' not found"
        dev = c.device(p1)
        dev.forward("tcp:0", "tcp:1")
        dev.reverse("tcp:5000", "tcp:1")
        with on_phone(farm, p1, "reconnect") as conn:
            assert conn.read_until_close() == "done"
        assert wait_until(lambda: [d.transport_id for d in c.list(extended=True)] == [5, 4])
        assert c.forward_list() == [] and dev.reverse_list() == []  # gone with the old connection


def test_network_phones_connect_and_disconnect():
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=TS, serials=["192.168.1.20:5555", "usbphone"]) as farm:
        c = client(farm)
        assert [d.serial for d in c.list()] == ["usbphone", "192.168.1.20:5555"]  # USB transports first
        assert ask(farm, "host:devices-l").splitlines()[1].split() == [
            "192.168.1.20:5555", "device", "product:sailfish", "model:Pixel", "device:sailfish", "transport_id:1"]
        assert ask(farm, "host-serial:192.168.1.20:5555:get-devpath") == "unknown"
        assert ask(farm, "host-serial:tcp:192.168.1.20:get-serialno") == "192.168.1.20:5555"
        assert ask(farm, "host-local:get-serialno") == "192.168.1.20:5555"  # -e: the TCP transport
        assert c.device("192.168.1.20:5555").shell("getprop ro.product.model") == "Pixel"
        assert c.disconnect("192.168.1.20") == "disconnected 192.168.1.20"
        assert [d.serial for d in c.list()] == ["usbphone"]
        assert c.connect("192.168.1.20:5555") == "connected to 192.168.1.20:5555"
        assert c.connect("192.168.1.20") == "already connected to 192.168.1.20:5555"
        assert c.list(extended=True)[1].transport_id == 3
        assert c.connect("10.0.0.9") == "failed to connect to '10.0.0.9:5555': Connection refused"
        assert c.connect("localhost:1") == "Connection refused"
        assert c.connect("10.0.0.9:x") == "bad port number 'x' in '10.0.0.9:x'"
        with pytest.raises(adbutils.AdbError, match="no such device '1.2.3.4:5678'"):
            c.disconnect("1.2.3.4:5678", raise_error=True)
        farm.unplug("192.168.1.20:5555")  # off the network: `adb connect` cannot reach it
        assert c.connect("192.168.1.20:5555") == "failed to connect to '192.168.1.20:5555': Connection refused"
        assert ask(farm, "host:disconnect:") == "disconnected everything"
    for serials, message in ((["a"], "1 serials for 2 phones"), (["a", "a"], "serials must differ"),
                             (["a b", "c"], "bad serial"), (["..", "c"], "bad serial"),
                             ([".state", "c"], "bad serial")):
        with pytest.raises(SimulationError, match=message):
            SimulatedFarm(["pixel1", "pixel4"], serials=serials)


def test_user_build_answers_and_refusals():
    with SimulatedFarm(["pixel6"], time_scale=TS) as farm:
        serial = farm.serials[0]
        dev = client(farm).device(serial)
        assert dev.root() == "adbd cannot run as root in production builds\n"
        with on_phone(farm, serial, "unroot:") as c:
            assert c.read_until_close() == "adbd not running as root\n"
        with on_phone(farm, serial, "remount:") as c:
            assert c.read_until_close() == 'Not running as root. Try "adb root" first.\n'
        for service in ("framebuffer:", "tcp:8080", "localabstract:foo", "jdwp:1"):
            with pytest.raises(adbutils.AdbError, match="^closed$"):
                on_phone(farm, serial, service)
        assert failure(farm, "host:kill") == "kill-server rejected by remote server"
        assert client(farm).server_version() == 41
        assert failure(farm, "host:nonsense") == "unknown host service 'nonsense'"
        assert failure(farm, "shell:true") == "device offline (no transport)"
        assert client(farm).device("model:Pixel_6").shell("getprop ro.product.model") == "Pixel 6"
        assert ask(farm, "host-serial:usb:1-1:get-serialno") == serial  # by devpath


def test_shell_v1_phone_answers_like_an_old_adbd():
    with SimulatedFarm(["pixel4"], time_scale=TS, quirks=["shell-v1"]) as farm:
        dev = client(farm).device(farm.serials[0])
        assert dev.get_features() == ""
        with pytest.raises(adbutils.AdbError, match="^closed$"):
            on_phone(farm, farm.serials[0], "shell,v2:echo hi")
        r = dev.shell2("echo out; false", v2=True)  # adbutils falls back to shell: and an exit-code sentinel
        assert (r.output, r.returncode) == ("out\n", 1)


def test_push_symlinks_stay_inside_the_phone(tmp_path):
    with SimulatedFarm(["pixel4"], time_scale=TS) as farm:
        serial = farm.serials[0]
        sandbox = farm.phone(serial).sandbox
        secret = tmp_path / "secret.txt"
        secret.write_text("host secret\n")

        def send_link(path: str, target: str) -> tuple[bytes, str]:
            with on_phone(farm, serial, "sync:") as c:
                spec = f"{path},{stat.S_IFLNK | 0o777}".encode()
                data = target.encode() + b"\0"
                c.send(b"SEND" + struct.pack("<I", len(spec)) + spec + b"DATA" + struct.pack("<I", len(data))
                       + data + b"DONE" + struct.pack("<I", 1_600_000_000))
                status = c.read(4)
                return status, c.read(struct.unpack("<I", c.read(4))[0]).decode()

        assert send_link("/data/local/tmp/links/out", str(secret)) == (b"OKAY", "")
        assert send_link("/data/local/tmp/links/up", "../../../../..") == (b"OKAY", "")
        link = sandbox / "data/local/tmp/links/out"
        assert link.is_symlink() and os.readlink(link) == str(secret)
        assert os.lstat(link).st_mtime == 1_600_000_000
        dev = client(farm).device(serial)
        assert dev.shell("readlink /data/local/tmp/links/out") == str(secret)
        assert dev.sync.stat("/data/local/tmp/links/out").mode & 0o170000 == stat.S_IFLNK
        with pytest.raises(adbutils.AdbError, match="No such file"):
            dev.sync.read_bytes("/data/local/tmp/links/out")  # resolved inside the phone's tree
        with pytest.raises(adbutils.AdbError, match="No such file"):
            dev.sync.read_bytes(f"/data/local/tmp/links/up{secret}")
        with pytest.raises(adbutils.AdbError):
            dev.sync.push(b"evil", "/data/local/tmp/links/up/system/bin/evil")
        assert send_link("/system/bin/evil", "/x") == (b"FAIL", "symlink failed: Permission denied")
        assert send_link("/data/local/tmp/links", "/x") == (b"FAIL", "symlink failed: File exists")
        dev.sync.push(b"inside", "/sdcard/real.txt")
        assert send_link("/data/local/tmp/links/out", "/sdcard/real.txt") == (b"OKAY", "")  # replaces the link
        assert dev.sync.read_bytes("/data/local/tmp/links/out") == b"inside"
        assert secret.read_text() == "host secret\n" and not (sandbox / "system/bin/evil").exists()
