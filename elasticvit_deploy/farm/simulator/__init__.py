"""Simulated Android phones behind a real adb server protocol endpoint, for trying the workflow and for CI.

    from elasticvit_deploy.farm.simulator import SimulatedFarm
    with SimulatedFarm(["pixel1", "pixel4"], time_scale=0.01) as farm:
        client = adbutils.AdbClient(host="127.0.0.1", port=farm.port)

The endpoint speaks the adb server protocol (smart sockets, shell v2, sync v1), so adbutils and `adb -P PORT` work
unmodified. Each phone is a directory tree with sysfs-like files, Android's shell (mksh) and toybox, a few
generated tools and a simulated LiteRT benchmark_model whose timings come from host timings scaled by the phone's
profile, noise and a thermal model. It is a simulator, not an emulator. Its clients get a phone, not the host: shell
commands run confined to the phone's tree by bubblewrap (sandbox.py), and the simulator's own file access resolves
paths inside that tree (paths.py).
"""

from .farm import SimulatedFarm
from .phone import SimPhone
from .profiles import PROFILES, PhoneProfile

__all__ = ["PROFILES", "PhoneProfile", "SimPhone", "SimulatedFarm"]
