"""`farm setup`: put the user's LiteRT `benchmark_model` (and the runner) on phones, once, and tell which tool it
is (the classic benchmark_model or LiteRT 2's CompiledModel tool, its version when it prints one)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from android_runner import RUNNER

from .adb import FarmError, FarmInputError, Phone
from .measure import detect_phone_tool
from .runner_protocol import BENCHMARK_PATH, RUNNER_PATH

ELF_MAGIC = b"\x7fELF"


def check_benchmark_binary(path: str | Path) -> tuple[Path, str]:
    """The binary must exist and be an ELF executable (LiteRT publishes android_aarch64 builds)."""
    path = Path(path)
    if not path.is_file():
        raise FarmInputError(f"{path}: no such file (download benchmark_model for android_aarch64 from LiteRT's "
                        f"releases or build it with bazel)")
    data = path.read_bytes()
    if not data.startswith(ELF_MAGIC):
        raise FarmInputError(f"{path}: not an ELF executable; expected LiteRT's benchmark_model for Android")
    return path, hashlib.sha256(data).hexdigest()


def install_on(phone: Phone, binary: Path, sha256: str) -> dict[str, Any]:
    """Push benchmark_model (executable) and the runner unless the phone already holds the same sha256, then ask
    the installed tool which kind it is: {"benchmark_model": pushed?, "runner": pushed?, "tool": {family,
    version, sha256, delegates}}."""
    phone.check_ready()
    pushed_bench = phone.push_if_changed(binary, BENCHMARK_PATH, sha256, mode=0o755)
    runner_sha = hashlib.sha256(RUNNER.read_bytes()).hexdigest()
    pushed_runner = phone.push_if_changed(RUNNER, RUNNER_PATH, runner_sha)
    r = phone.shell(["chmod", "755", BENCHMARK_PATH])
    if r.exit_code != 0:
        raise FarmError(f"{phone.serial}: cannot make {BENCHMARK_PATH} executable: {r.stderr.strip()}")
    sha, tool = detect_phone_tool(phone)
    return {"benchmark_model": pushed_bench, "runner": pushed_runner,
            "tool": {"family": tool.family, "version": tool.version, "sha256": sha,
                     "delegates": list(tool.delegates())}}
