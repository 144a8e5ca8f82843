"""Phone profiles of the simulator: build properties, CPU layout and the knobs of the timing and thermal models.

The properties are copied from real devices. The four profiles with ``tables=...`` are twins of the phones whose
nn-Meter block latency tables the toolkit uses (twin.py): a model carrying an ElasticViT arch or block takes what
that table says, plus `invoke_overhead_us` per inference. The other knobs are plausible round numbers, not
measurements: `invoke_overhead_us` (the per-invoke cost of the interpreter that no table entry carries, assumed),
the heating and throttling figures, and `speed_factor`, which only serves the fallback (a model the table knows
nothing about, or a twin without its table): host latency x speed_factor. Both latencies refer to the phone's
fastest cluster of at least two cores at full frequency (`reference_khz`), where nn-Meter measured; a run pinned
elsewhere scales by the ratio of top frequencies. The heating is chosen so that one busy benchmark process
settles below the throttling threshold (ambient + heat x tau: the tables were measured unthrottled, and the
runner's cool-down starts each round below 42 C) while two at once, or a phone pre-heated, throttle.
The idle frequency (what scaling_cur_freq shows for an idle core under the idle-freq-drop quirk) is the lowest
cpufreq step: 307200 kHz on every core of a real Pixel (pytorch/cpuinfo test/mock/pixel.h, cpuinfo_min_freq), and
300000 kHz, the lowest step of the Qualcomm silver clusters of that era (e.g. an SDM850's cpu0-3
cpuinfo_min_freq in a cpufreq dump on linux-pm, 2021-11-05), as a plausible value for the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhoneProfile:
    """One kind of phone. All temperatures in millidegrees Celsius, all times in simulated seconds."""

    name: str                           # short name, used in serials: sim-<name>-<n>
    model: str                          # ro.product.model
    manufacturer: str                   # ro.product.manufacturer
    brand: str                          # ro.product.brand
    device: str                         # ro.product.device (code name)
    product: str                        # ro.product.name
    platform: str                       # ro.board.platform
    soc_manufacturer: str               # ro.soc.manufacturer
    soc: str                            # ro.soc.model
    sdk: int                            # ro.build.version.sdk
    release: str                        # ro.build.version.release
    build_id: str                       # ro.build.id
    fingerprint: str                    # ro.build.fingerprint
    core_max_freqs_khz: tuple[int, ...]  # cpuinfo_max_freq of cpu0, cpu1, ...
    speed_factor: float                 # fallback only: phone latency / host latency (reference cluster)
    invoke_overhead_us: float           # twin: per-inference cost beyond the table's blocks (assumed)
    noise_cv: float                     # coefficient of variation of one run (lognormal)
    ambient_mc: float                   # idle temperature
    heat_mc_per_busy_s: float           # temperature rise per busy second (before cooling)
    cooling_tau_s: float                # time constant of the exponential decay towards ambient
    throttle_threshold_mc: float        # above this the CPU frequency starts to drop ...
    throttle_factor: float              # ... down to this fraction of its maximum, 5 degrees higher
    battery_level: int                  # percent
    free_storage_mb: int                # free space on /data
    abi: str = "arm64-v8a"
    idle_freq_khz: int = 300000         # scaling_cur_freq of an idle core (idle-freq-drop quirk)
    tables: str | None = None           # the phone of nn-Meter's latency tables it is the twin of (latency.tables)

    @property
    def num_cores(self) -> int:
        return len(self.core_max_freqs_khz)

    @property
    def reference_khz(self) -> int:
        """The top frequency of the cluster the phone's latencies refer to: the fastest cluster of at least two
        cores (nn-Meter measured its tables there, e.g. `taskset 70` on a Pixel 4; a lone prime core is faster)."""
        freqs = self.core_max_freqs_khz
        shared = [f for f in set(freqs) if freqs.count(f) >= 2]
        return max(shared or freqs)

    def props(self, serial: str) -> dict[str, str]:
        """The getprop properties of one phone of this profile."""
        return {
            "ro.build.fingerprint": self.fingerprint,
            "ro.build.id": self.build_id,
            "ro.build.type": "user",
            "ro.build.tags": "release-keys",
            "ro.build.version.release": self.release,
            "ro.build.version.sdk": str(self.sdk),
            "ro.board.platform": self.platform,
            "ro.debuggable": "0",
            "ro.product.brand": self.brand,
            "ro.product.cpu.abi": self.abi,
            "ro.product.cpu.abilist": f"{self.abi},armeabi-v7a,armeabi",
            "ro.product.device": self.device,
            "ro.product.manufacturer": self.manufacturer,
            "ro.product.model": self.model,
            "ro.product.name": self.product,
            "ro.secure": "1",
            "ro.serialno": serial,
            "ro.soc.manufacturer": self.soc_manufacturer,
            "ro.soc.model": self.soc,
            "sys.boot_completed": "1",
        }


PROFILES: dict[str, PhoneProfile] = {p.name: p for p in (
    PhoneProfile(
        name="pixel1", model="Pixel", manufacturer="Google", brand="google", device="sailfish", product="sailfish",
        platform="msm8996", soc_manufacturer="QTI", soc="MSM8996", sdk=28, release="9", build_id="PQ3A.190801.002",
        fingerprint="google/sailfish/sailfish:9/PQ3A.190801.002/5670241:user/release-keys",
        core_max_freqs_khz=(1593600, 1593600, 2150400, 2150400), speed_factor=4.0,
        invoke_overhead_us=60, noise_cv=0.02, ambient_mc=30000, heat_mc_per_busy_s=1000, cooling_tau_s=10,
        throttle_threshold_mc=42000, throttle_factor=0.55, battery_level=85, free_storage_mb=9200,
        idle_freq_khz=307200, tables="pixel1"),
    PhoneProfile(
        name="pixel4", model="Pixel 4", manufacturer="Google", brand="google", device="flame", product="flame",
        platform="msmnile", soc_manufacturer="QTI", soc="SM8150", sdk=30, release="11", build_id="RQ3A.211001.001",
        fingerprint="google/flame/flame:11/RQ3A.211001.001/7641976:user/release-keys",
        core_max_freqs_khz=(1785600,) * 4 + (2419200,) * 3 + (2841600,), speed_factor=2.2,
        invoke_overhead_us=40, noise_cv=0.02, ambient_mc=30000, heat_mc_per_busy_s=1200, cooling_tau_s=10,
        throttle_threshold_mc=45000, throttle_factor=0.65, battery_level=85, free_storage_mb=41000, tables="pixel4"),
    PhoneProfile(
        name="pixel6", model="Pixel 6", manufacturer="Google", brand="google", device="oriole", product="oriole",
        platform="gs101", soc_manufacturer="Google", soc="GS101", sdk=33, release="13", build_id="TQ3A.230805.001",
        fingerprint="google/oriole/oriole:13/TQ3A.230805.001/10316531:user/release-keys",
        core_max_freqs_khz=(1803000,) * 4 + (2253000,) * 2 + (2802000,) * 2, speed_factor=1.4,
        invoke_overhead_us=30, noise_cv=0.02, ambient_mc=30000, heat_mc_per_busy_s=1400, cooling_tau_s=8,
        throttle_threshold_mc=43000, throttle_factor=0.6, battery_level=85, free_storage_mb=87000, tables="pixel6"),
    PhoneProfile(
        name="xiaomi11", model="M2011K2G", manufacturer="Xiaomi", brand="Xiaomi", device="venus",
        product="venus_eea", platform="lahaina", soc_manufacturer="QTI", soc="SM8350", sdk=31, release="12",
        build_id="SKQ1.211006.001",
        fingerprint="Xiaomi/venus_eea/venus:12/SKQ1.211006.001/V13.0.6.0.SKBEUXM:user/release-keys",
        core_max_freqs_khz=(1804800,) * 4 + (2419200,) * 3 + (2841600,), speed_factor=1.8,
        invoke_overhead_us=30, noise_cv=0.02, ambient_mc=30000, heat_mc_per_busy_s=1300, cooling_tau_s=9,
        throttle_threshold_mc=44000, throttle_factor=0.6, battery_level=85, free_storage_mb=64000, tables="xiaomi11"),
)}

#: The simulated twin of each table phone: the profile whose `tables` names it (what `search --simulate` measures).
TABLE_TWINS: dict[str, PhoneProfile] = {p.tables: p for p in PROFILES.values() if p.tables is not None}
