"""Power and temperature telemetry from the best real sensor on this machine, or an honest "none".

Sources, in the order :func:`detect_power_source` tries them:

1. ``pynq-rails``: ``pynq.get_rails()`` on a Zynq / Zynq UltraScale+ board (PMBus/INA
   sensors through libsensors). The rails summed are named in every reading.
2. ``alveo-xrt``: an Alveo card's board sensors through XRT (``pynq.pmbus.get_xrt_sysfs_rails``);
   the card's input rails (12 V PEX, 12 V AUX, 3.3 V PEX, 3.3 V AUX) are summed.
3. ``rapl``: Intel RAPL energy counters of the x86 host under ``/sys/class/powercap``
   (also used by Linux for AMD Zen); power is the energy difference over an interval.
4. ``none``: no power sensor. Readings then carry ``watts=None`` and say why; nothing is
   estimated or invented.

Usage::

    from pynq_sparse.telemetry import detect_power_source, read_temperature
    source = detect_power_source()
    reading = source.read()                   # PowerReading(source, watts, rails, status, ...)
    print(reading.status, reading.watts, reading.rails)
    print(read_temperature())                 # TemperatureReading or None
"""
from __future__ import annotations

import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol

SYSFS = Path("/sys")
DEVICE_TREE = Path("/proc/device-tree")          # "compatible" names xlnx,zynq* on PYNQ boards
POWERCAP = "class/powercap"                    # below the sysfs root
RAPL_PREFIX = "intel-rapl:"                     # zone directories: intel-rapl:0, intel-rapl:0:2, ...
RAPL_MIN_INTERVAL_S = 0.05                      # shortest interval a first RAPL read waits for
ALVEO_INPUT_RAILS = ("12v_pex", "12v_aux", "3v3_pex", "3v3_aux")   # what enters the card
SOURCE_NAMES = ("auto", "pynq-rails", "alveo-xrt", "rapl", "none")


@dataclass
class PowerReading:
    """One power reading: what it measured, from which sensor, and whether it worked.

    ``status`` is ``"ok"`` when `watts` holds a measurement, ``"unavailable: <reason>"``
    when the sensor exists but could not be read, ``"no power sensor: <reason>"`` when
    there is none. `watts` is None unless the status is ``"ok"``.
    """

    source: str                                   # "pynq-rails", "alveo-xrt", "rapl" or "none"
    watts: float | None                           # summed power in W (None when not measured)
    rails: list[str] = field(default_factory=list)  # names of what was summed
    status: str = "ok"
    interval_s: float | None = None               # RAPL: seconds the energy difference covers
    per_rail_w: dict[str, float] = field(default_factory=dict)
    energy_j: float | None = None                 # RAPL: joules in that interval
    timestamp: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.watts is not None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TemperatureReading:
    """A device temperature in degrees Celsius and the sensor it came from."""

    celsius: float
    source: str                                   # e.g. "thermal_zone0 (x86_pkg_temp)", "iio:device0 ams"


class PowerSource(Protocol):
    """Anything that answers a :class:`PowerReading`."""

    name: str

    def read(self) -> PowerReading:
        ...


# --- no sensor -------------------------------------------------------------
class NoPowerSensor:
    """The answer where no power sensor exists: no number, and the reason."""

    name = "none"

    def __init__(self, reason: str = "no power sensor found on this machine") -> None:
        self.reason = reason

    def read(self) -> PowerReading:
        return PowerReading(source=self.name, watts=None, status=f"no power sensor: {self.reason}")


# --- Intel RAPL ------------------------------------------------------------
@dataclass
class RaplZone:
    """One RAPL zone directory (e.g. ``intel-rapl:0`` named ``package-0``)."""

    path: Path
    name: str
    max_energy_uj: int

    @property
    def label(self) -> str:
        return f"{self.path.name} {self.name}"


def rapl_zones(sysfs_root: Path | str = SYSFS) -> list[RaplZone]:
    """The RAPL zones whose energies are summed: every ``package-N`` zone and its ``dram`` subzone.

    Core/uncore subzones are left out (the package already contains them), and so is
    ``psys`` (it contains the packages). Unreadable names or ranges leave a zone out.
    """
    base = Path(sysfs_root) / POWERCAP
    zones = []
    for d in sorted(base.glob(RAPL_PREFIX + "*")):
        try:
            name = (d / "name").read_text().strip()
            max_uj = int((d / "max_energy_range_uj").read_text().strip())
        except (OSError, ValueError):
            continue
        depth = d.name.count(":")                  # intel-rapl:0 -> 1, intel-rapl:0:2 -> 2
        if (depth == 1 and name.startswith("package")) or (depth == 2 and name == "dram"):
            zones.append(RaplZone(d, name, max_uj))
    return zones


def energy_delta_uj(before: int, after: int, max_energy_range_uj: int) -> int:
    """Energy used between two ``energy_uj`` readings, allowing for one wrap of the counter.

    The counter runs from 0 to ``max_energy_range_uj`` and then starts again at 0.

    Examples
    --------
    >>> energy_delta_uj(100, 250, 1000)
    150
    >>> energy_delta_uj(900, 50, 1000)
    150
    """
    if after >= before:
        return after - before
    return after + max_energy_range_uj - before


class RaplSource:
    """Host power from Intel RAPL: the difference of ``energy_uj`` counters over time.

    Each :meth:`read` returns the mean power since the previous read; the first one waits
    `first_interval_s` between two counter reads. Reading ``energy_uj`` needs root on Linux
    >= 5.10: a permission error gives an ``"unavailable: ..."`` reading, not an exception.

    Parameters
    ----------
    sysfs_root : path
        Where sysfs is mounted (a fake tree in tests).
    first_interval_s : float > 0
        Seconds between the two counter reads of the first :meth:`read`.
    clock : callable
        Monotonic clock in seconds (tests pass a fake one).
    sleep : callable
        Sleep function (tests pass a fake one).
    """

    name = "rapl"

    def __init__(self, sysfs_root: Path | str = SYSFS, first_interval_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.zones = rapl_zones(sysfs_root)
        self.first_interval_s = max(float(first_interval_s), RAPL_MIN_INTERVAL_S)
        self._clock, self._sleep = clock, sleep
        self._last: tuple[float, list[int]] | None = None
        self._lock = threading.Lock()

    @property
    def rails(self) -> list[str]:
        return [z.label for z in self.zones]

    def _counters(self) -> list[int]:
        return [int((z.path / "energy_uj").read_text().strip()) for z in self.zones]

    def read(self) -> PowerReading:
        """Mean power in W since the previous read (or over `first_interval_s` the first time)."""
        if not self.zones:
            return PowerReading(self.name, None, status="unavailable: no readable RAPL package zone under "
                                "/sys/class/powercap")
        with self._lock:
            try:
                if self._last is None:
                    self._last = (self._clock(), self._counters())
                    self._sleep(self.first_interval_s)
                now, counters = self._clock(), self._counters()
            except PermissionError as err:
                return PowerReading(self.name, None, rails=self.rails,
                                    status=f"unavailable: permission denied reading {err.filename or 'energy_uj'} "
                                           "(RAPL counters are root-only since Linux 5.10; run as root or make "
                                           "energy_uj readable)")
            except (OSError, ValueError) as err:
                return PowerReading(self.name, None, rails=self.rails, status=f"unavailable: {err}")
            t0, before = self._last
            self._last = (now, counters)
        dt = now - t0
        if dt <= 0:
            return PowerReading(self.name, None, rails=self.rails, status="unavailable: zero interval between reads")
        per_zone = {z.label: energy_delta_uj(b, a, z.max_energy_uj) / 1e6 / dt
                    for z, b, a in zip(self.zones, before, counters)}
        energy = sum(per_zone.values()) * dt
        return PowerReading(self.name, energy / dt, rails=self.rails, interval_s=dt, per_rail_w=per_zone,
                            energy_j=energy)


# --- PYNQ rails (Zynq boards) and Alveo sensors ----------------------------
class RailsSource:
    """Power as the sum of the power sensors of named rails (``pynq.get_rails()``-style dicts).

    Parameters
    ----------
    name : str
        Source name reported in readings ("pynq-rails" or "alveo-xrt").
    get_rails : callable
        Returns ``{rail name: rail}`` where ``rail.power.value`` is in W (None if no sensor).
    include : iterable of str, optional
        Rails to sum (default: every rail that has a power sensor).
    """

    def __init__(self, name: str, get_rails: Callable[[], dict], include: Iterable[str] | None = None) -> None:
        self.name = name
        self._get_rails = get_rails
        self.include = list(include) if include is not None else None

    def read(self) -> PowerReading:
        try:
            rails = self._get_rails()
        except Exception as err:  # noqa: BLE001 - a driver failure must become a reading, not a crash
            return PowerReading(self.name, None, status=f"unavailable: reading the rails failed: {err}")
        names = self.include if self.include is not None else sorted(rails)
        per_rail: dict[str, float] = {}
        for name in names:
            rail = rails.get(name)
            sensor = getattr(rail, "power", None)
            if sensor is None:
                continue
            try:
                per_rail[name] = float(sensor.value)
            except Exception:  # noqa: BLE001
                continue
        if not per_rail:
            wanted = ", ".join(names) if names else "any rail"
            return PowerReading(self.name, None, status=f"unavailable: no power sensor on {wanted}")
        return PowerReading(self.name, sum(per_rail.values()), rails=list(per_rail), per_rail_w=per_rail)


def _on_zynq(device_tree: Path) -> bool:
    try:
        return b"xlnx,zynq" in (device_tree / "compatible").read_bytes()
    except OSError:
        return False


def _has_alveo(sysfs_root: Path) -> bool:
    return any((sysfs_root / "bus/pci/drivers" / d).is_dir() for d in ("xclmgmt", "xocl"))


def _pynq_rails() -> dict:
    import pynq
    return pynq.get_rails()


def _alveo_rails() -> dict:
    from pynq.pmbus import get_xrt_sysfs_rails
    return get_xrt_sysfs_rails()


def detect_power_source(preferred: str = "auto", sysfs_root: Path | str = SYSFS,
                        device_tree: Path | str = DEVICE_TREE) -> PowerSource:
    """The best power source on this machine (see the module docstring for the order).

    Parameters
    ----------
    preferred : {"auto", "pynq-rails", "alveo-xrt", "rapl", "none"}
        "auto" tries them in order; a named source is used even when its probe fails
        (its readings then say why it is unavailable).
    sysfs_root, device_tree : path
        Where sysfs and the device tree are mounted (fake trees in tests).
    """
    if preferred not in SOURCE_NAMES:
        raise ValueError(f"unknown power source {preferred!r}; choose one of {', '.join(SOURCE_NAMES)}")
    root = Path(sysfs_root)
    if preferred == "none":
        return NoPowerSensor("power telemetry switched off (PYNQ_SPARSE_POWER_SOURCE=none)")
    if preferred == "pynq-rails" or (preferred == "auto" and _on_zynq(Path(device_tree))):
        return RailsSource("pynq-rails", _pynq_rails)
    if preferred == "alveo-xrt" or (preferred == "auto" and _has_alveo(root)):
        return RailsSource("alveo-xrt", _alveo_rails, include=ALVEO_INPUT_RAILS)
    if preferred == "rapl" or rapl_zones(root):
        return RaplSource(root)
    looked = "not a Zynq board (no PMBus rails), no Alveo card (xclmgmt/xocl driver), no RAPL zones under " \
             "/sys/class/powercap"
    if platform.machine() in ("x86_64", "AMD64") and not (root / POWERCAP).is_dir():
        looked += " (powercap is not mounted: containers and VMs usually hide it)"
    return NoPowerSensor(looked)


# --- temperature -------------------------------------------------------------
def read_temperature(sysfs_root: Path | str = SYSFS) -> TemperatureReading | None:
    """The device temperature from the first sensor found, or None where there is none.

    Tries the Zynq AMS/XADC (IIO ``in_temp*_raw`` with scale and offset), then hwmon
    chips of CPU packages (``coretemp``, ``k10temp``, ``zenpower``), then thermal zones
    (``x86_pkg_temp`` first).
    """
    root = Path(sysfs_root)
    for dev in sorted((root / "bus/iio/devices").glob("iio:device*")):
        name = _read(dev / "name")
        if name not in ("ams", "xadc"):
            continue
        for raw in sorted(dev.glob("in_temp*_raw")):
            stem = raw.name[:-len("_raw")]
            try:
                value = float(_read(raw))
                scale = float(_read(dev / f"{stem}_scale") or 1.0)
                offset = float(_read(dev / f"{stem}_offset") or 0.0)
            except (TypeError, ValueError):
                continue
            return TemperatureReading((value + offset) * scale / 1000.0, f"{dev.name} {name} {stem}")
    for hw in sorted((root / "class/hwmon").glob("hwmon*")):
        name = _read(hw / "name")
        if name in ("coretemp", "k10temp", "zenpower"):
            reading = _millidegrees(hw / "temp1_input", f"{hw.name} {name}")
            if reading is not None:
                return reading
    zones = sorted((root / "class/thermal").glob("thermal_zone*"))
    zones.sort(key=lambda z: _read(z / "type") != "x86_pkg_temp")
    for zone in zones:
        reading = _millidegrees(zone / "temp", f"{zone.name} ({_read(zone / 'type')})")
        if reading is not None:
            return reading
    return None


def _millidegrees(path: Path, source: str) -> TemperatureReading | None:
    """A sysfs temperature in millidegrees Celsius, or None when missing or unreadable."""
    text = _read(path)
    try:
        return TemperatureReading(float(text) / 1000.0, source) if text is not None else None
    except ValueError:
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


# --- monitor: power, energy per word and throughput over time ----------------
@dataclass
class TelemetrySnapshot:
    """What the service reports: the latest power reading with throughput and energy per word."""

    power: PowerReading
    words_per_s: float                    # words classified per second over the last interval
    energy_per_word_j: float | None       # J per word over the last interval (None without a power reading)
    words_total: int
    temperature: TemperatureReading | None


class TelemetryMonitor:
    """Samples a power source every `interval_s` and relates it to the words counted meanwhile.

    Energy per word is (mean power x interval) / words classified in that interval: the
    whole source's energy (idle share included), so it is an upper bound on the device's
    own cost per word. It is None when the source gives no number or no word was classified.

    Call :meth:`count_words` from the code that classifies; :meth:`snapshot` is cheap.
    """

    def __init__(self, source: PowerSource, interval_s: float = 1.0, sysfs_root: Path | str = SYSFS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.interval_s = float(interval_s)
        self.sysfs_root = Path(sysfs_root)
        self._clock = clock
        self._lock = threading.Lock()
        self._words_total = 0
        self._mark = (clock(), 0)             # (time, words_total) at the last sample
        self._last = TelemetrySnapshot(source.read() if source.name == "none" else
                                       PowerReading(source.name, None, status="unavailable: not sampled yet"),
                                       0.0, None, 0, None)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def count_words(self, n: int) -> None:
        with self._lock:
            self._words_total += int(n)

    @property
    def words_total(self) -> int:
        return self._words_total

    def sample(self) -> TelemetrySnapshot:
        """Read the source now and close the current interval."""
        power = self.source.read()
        temperature = read_temperature(self.sysfs_root)
        with self._lock:
            now, words = self._clock(), self._words_total
            t0, w0 = self._mark
            self._mark = (now, words)
        dt = max(now - t0, 1e-9)
        dw = words - w0
        rate = dw / dt
        epw = power.watts / rate if power.ok and dw > 0 else None      # W / (words/s) = J/word
        self._last = TelemetrySnapshot(power, rate, epw, words, temperature)
        return self._last

    def snapshot(self) -> TelemetrySnapshot:
        """The latest sample, with the running word total."""
        last = self._last
        return TelemetrySnapshot(last.power, last.words_per_s, last.energy_per_word_j, self._words_total,
                                 last.temperature)

    def start(self) -> "TelemetryMonitor":
        """Sample in a daemon thread every `interval_s` until :meth:`stop`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="telemetry", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except Exception:  # noqa: BLE001 - telemetry must never take the service down
                pass


__all__ = ["ALVEO_INPUT_RAILS", "NoPowerSensor", "PowerReading", "PowerSource", "RailsSource", "RaplSource",
           "RaplZone", "TelemetryMonitor", "TelemetrySnapshot", "TemperatureReading", "detect_power_source",
           "energy_delta_uj", "rapl_zones", "read_temperature"]
