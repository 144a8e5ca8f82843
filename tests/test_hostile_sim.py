"""The simulated phones give their clients a phone, never the host: every attempt here comes in through the adb
server protocol (adbutils), as any local process connecting to `farm simulate`'s port could make it."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import adbutils
import pytest

from elasticvit_deploy.simulator import SimulatedFarm

TS = 0.01
BENCH = "/data/local/tmp/elasticvit-deploy/benchmark_model"


@pytest.fixture(scope="module")
def farm():
    with SimulatedFarm(["pixel4"], time_scale=TS) as f:
        yield f


@pytest.fixture()
def dev(farm):
    return adbutils.AdbClient(host="127.0.0.1", port=farm.port).device(farm.serials[0])


def _alive(dev) -> None:
    r = dev.shell2("echo alive; getprop ro.product.model", v2=True)
    assert (r.returncode, r.stdout) == (0, "alive\nPixel 4\n")


def test_shell_can_neither_write_host_tmp_nor_read_host_files(dev):
    marker = Path("/tmp") / f"evd-hostile-{uuid.uuid4().hex}"
    hostname = Path("/etc/hostname")
    r = dev.shell2(f"touch {marker}; echo touch=$?; cat {hostname}; echo cat=$?; cat /proc/1/root/etc/hostname; "
                   "ls /etc /usr /home /root 2>&1; echo ls=$?", v2=True)
    assert not marker.exists()
    assert "touch=1" in r.stdout and "cat=1" in r.stdout and "ls=1" in r.stdout
    if hostname.is_file() and hostname.read_text().strip():
        assert hostname.read_text().strip() not in r.stdout
    _alive(dev)


def test_shell_runs_as_android_shell_user_with_no_host_programs(dev):
    r = dev.shell2("grep -E '^(Uid|Gid|CapEff):' /proc/self/status; echo $0; readlink /bin; "
                   "for p in python3 /usr/bin/python3 bash /bin/bash perl apt-get; do $p -c true 2>/dev/null; "
                   "echo \"$p=$?\"; done", v2=True)
    lines = r.stdout.splitlines()
    assert lines[0].split()[1:] == ["2000"] * 4 and lines[1].split()[1:] == ["2000"] * 4
    assert lines[2] == "CapEff:\t0000000000000000"
    assert lines[3:5] == ["/system/bin/sh", "/system/bin"]
    assert all(line.endswith("=127") for line in lines[5:]), lines


def test_system_and_sys_are_read_only(dev, farm):
    sandbox = farm.phone(farm.serials[0]).sandbox
    before = (sandbox / "system/bin/getprop").read_bytes()
    r = dev.shell2("echo evil > /system/bin/getprop; echo 1 > /sys/class/thermal/thermal_zone0/temp; "
                   "mkdir /evil; echo rc=$?", v2=True)
    assert "rc=1" in r.stdout and "Read-only file system" in r.stderr
    assert (sandbox / "system/bin/getprop").read_bytes() == before and not (sandbox / "evil").exists()
    _alive(dev)


def test_no_network_not_even_the_hosts_loopback(dev, farm):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(2)
        port = listener.getsockname()[1]
        r = dev.shell2(f"echo hi | nc -w 1 127.0.0.1 {port}; echo nc=$?; "
                       f"echo host:version | nc -w 1 127.0.0.1 {farm.port}; echo adb=$?", v2=True)
        with pytest.raises(TimeoutError):
            listener.accept()
    assert "nc=1" in r.stdout and "adb=1" in r.stdout


def test_push_and_pull_never_follow_links_out_of_the_phone(dev, farm, tmp_path):
    sandbox = farm.phone(farm.serials[0]).sandbox
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    host_dir = tmp_path / "hostdir"
    host_dir.mkdir()
    r = dev.shell2(f"cd /data/local/tmp && ln -s {secret} leak && ln -s /etc/hostname leak2 && "
                   f"ln -s {host_dir} out && ln -s /system/bin sysbin && echo linked", v2=True)
    assert r.stdout == "linked\n", r.stderr
    for path in ("/data/local/tmp/leak", "/data/local/tmp/leak2", "/data/local/tmp/../../../etc/hostname",
                 f"/data/local/tmp/out/../{secret.name}"):
        with pytest.raises(adbutils.AdbError, match="No such file"):
            dev.sync.read_bytes(path)
    assert dev.sync.stat(f"/data/local/tmp/out/{secret.name}").mode == 0
    assert [e.path for e in dev.sync.list("/data/local/tmp/out")] == []
    for path in ("/data/local/tmp/out/evil", "/data/local/tmp/sysbin/getprop", "/data/local/tmp/../../../tmp/evil",
                 "/data/local/tmp/leak"):
        try:
            dev.sync.push(b"evil", path)
        except adbutils.AdbError:
            pass
    assert list(host_dir.iterdir()) == [] and secret.read_text() == "host secret\n"
    assert b"evil" not in (sandbox / "system/bin/getprop").read_bytes()
    assert not (sandbox / "tmp").exists()
    # a push onto a link replaces the link on the phone, as a new file, and never writes through it
    assert dev.sync.read_bytes("/data/local/tmp/leak") == b"evil"
    assert not (sandbox / "data/local/tmp/leak").is_symlink() and secret.read_text() == "host secret\n"
    # links inside the phone's tree still work, as on a phone
    dev.sync.push(b"inside", "/sdcard/real.txt")
    dev.shell("ln -s /sdcard/real.txt /data/local/tmp/inner")
    assert dev.sync.read_bytes("/data/local/tmp/inner") == b"inside"
    _alive(dev)


def test_benchmark_model_reads_only_the_phones_files(dev, tiny_tflite, tmp_path):
    host_model = tmp_path / "host.tflite"
    shutil.copyfile(tiny_tflite, host_model)
    dev.sync.push(tiny_tflite, "/data/local/tmp/tiny.tflite")
    dev.shell(f"ln -sf {host_model} /data/local/tmp/hostlink.tflite")
    r = dev.shell2(f"{BENCH} --graph=/data/local/tmp/hostlink.tflite --num_runs=2 --warmup_runs=1", v2=True)
    assert r.returncode == 1 and "ERROR: Could not open '/data/local/tmp/hostlink.tflite'." in r.stderr
    r = dev.shell2(f"cd /data/local/tmp && {BENCH} --graph=tiny.tflite --num_runs=2 --warmup_runs=1 --min_secs=0 "
                   "--warmup_min_secs=0", v2=True)
    assert r.returncode == 0, r.stderr
    assert "INFO: Loaded model tiny.tflite" in r.stdout and "Inference timings in us" in r.stdout


def test_farm_refuses_to_start_without_a_sandbox(tmp_path):
    """No bubblewrap on PATH: `farm simulate` says why in one line; it never falls back to an open host shell."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("mksh", "toybox", "ldd"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    env = {**os.environ, "PATH": str(bin_dir), "ELASTICVIT_DEPLOY_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "elasticvit_deploy", "farm", "simulate", "--devices", "pixel1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "error: cannot confine simulated phones: bwrap not found (install them: apt-get install bubblewrap mksh "
        "toybox)"]


def test_the_simulation_process_is_confined_too(tmp_path):
    """The simulated benchmark_model runs the host's LiteRT on a pushed model: were that model to take over the
    process, it would still find no host files but the system's and its own, no network and nothing to write."""
    from elasticvit_deploy.simulator.sandbox import find_userland, tool_command

    state = tmp_path / "state"
    state.mkdir()
    probe = ("import os, socket\n"
             "for p in ('/etc/hostname', '/etc/shadow', '/root/.bashrc', __file__):\n"
             "    print(p, os.path.exists(p))\n"
             f"open({str(state / 'ok')!r}, 'w').write('ok')\n"
             "for target in ('/usr/evil', '/tmp/../usr/evil'):\n"
             "    try:\n        open(target, 'w')\n    except OSError as e:\n        print('write', e.errno)\n"
             "s = socket.socket()\n"
             "try:\n    s.connect(('127.0.0.1', 22)); print('net yes')\nexcept OSError:\n    print('net no')\n")
    (tmp_path / "probe.py").write_text(probe)
    argv = tool_command(find_userland(), [tmp_path], [state], [sys.executable, str(tmp_path / "probe.py")])
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[:3] == ["/etc/hostname False", "/etc/shadow False", "/root/.bashrc False"]
    assert lines[3].endswith("True")  # its own (read-only) files are there
    assert lines[4:6] == ["write 30", "write 30"] and lines[6] == "net no"  # EROFS
    assert (state / "ok").read_text() == "ok"
