"""Telemetry: RAPL against a fake sysfs tree, PYNQ/Alveo rails, the honest "no sensor" answer, temperature."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from pynq_sparse.telemetry import (ALVEO_INPUT_RAILS, NoPowerSensor, RailsSource, RaplSource, TelemetryMonitor,
                                   detect_power_source, energy_delta_uj, rapl_zones, read_temperature)

MAX_UJ = 262_143_328_850          # a real package's max_energy_range_uj


def make_zone(root: Path, name: str, label: str, energy: int, max_uj: int = MAX_UJ) -> Path:
    d = root / "class/powercap" / name
    d.mkdir(parents=True)
    (d / "name").write_text(label + "\n")
    (d / "energy_uj").write_text(f"{energy}\n")
    (d / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return d


@pytest.fixture
def rapl_tree(tmp_path: Path) -> Path:
    """Two packages with core/uncore/dram subzones and a psys zone, like a dual-socket Xeon."""
    make_zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    make_zone(tmp_path, "intel-rapl:0:0", "core", 500_000)
    make_zone(tmp_path, "intel-rapl:0:1", "uncore", 100_000)
    make_zone(tmp_path, "intel-rapl:0:2", "dram", 2_000_000)
    make_zone(tmp_path, "intel-rapl:1", "package-1", 3_000_000)
    make_zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)
    return tmp_path


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, dt: float) -> None:
        self.t += dt


def set_energy(root: Path, zone: str, value: int) -> None:
    (root / "class/powercap" / zone / "energy_uj").write_text(f"{value}\n")


def test_rapl_sums_packages_and_dram_but_not_subzones_or_psys(rapl_tree):
    zones = rapl_zones(rapl_tree)
    assert [z.label for z in zones] == ["intel-rapl:0 package-0", "intel-rapl:0:2 dram", "intel-rapl:1 package-1"]


def test_energy_delta_handles_one_wrap_of_the_counter():
    assert energy_delta_uj(100, 250, 1000) == 150
    assert energy_delta_uj(900, 50, 1000) == 150
    assert energy_delta_uj(MAX_UJ - 10, 20, MAX_UJ) == 30


def test_rapl_power_is_the_energy_difference_over_the_interval(rapl_tree):
    clock = FakeClock()
    src = RaplSource(rapl_tree, first_interval_s=0.5, clock=clock, sleep=clock.sleep)

    # first read: two counter reads 0.5 s apart; the counters do not move -> 0 W
    r = src.read()
    assert r.status == "ok" and r.source == "rapl"
    assert r.watts == pytest.approx(0.0) and r.interval_s == pytest.approx(0.5)
    assert r.rails == ["intel-rapl:0 package-0", "intel-rapl:0:2 dram", "intel-rapl:1 package-1"]

    # 2 s later: package-0 used 20 J, dram 4 J, package-1 wrapped and used 6 J -> 30 J / 2 s = 15 W
    clock.t += 2.0
    set_energy(rapl_tree, "intel-rapl:0", 1_000_000 + 20_000_000)
    set_energy(rapl_tree, "intel-rapl:0:2", 2_000_000 + 4_000_000)
    set_energy(rapl_tree, "intel-rapl:1", 3_000_000 + 6_000_000 - MAX_UJ)  # wrapped past the maximum
    set_energy(rapl_tree, "intel-rapl:2", 1)                                # psys is never read
    r = src.read()
    assert r.ok
    assert r.interval_s == pytest.approx(2.0)
    assert r.watts == pytest.approx(15.0)
    assert r.energy_j == pytest.approx(30.0)
    assert r.per_rail_w == pytest.approx({"intel-rapl:0 package-0": 10.0, "intel-rapl:0:2 dram": 2.0,
                                          "intel-rapl:1 package-1": 3.0})


def test_rapl_permission_error_is_unavailable_not_an_exception(rapl_tree, monkeypatch):
    real = Path.read_text

    def deny(self, *a, **k):
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self, *a, **k)

    src = RaplSource(rapl_tree, first_interval_s=0.05)       # zones are found (names are world-readable)
    monkeypatch.setattr(Path, "read_text", deny)
    r = src.read()
    assert r.watts is None and not r.ok
    assert r.status.startswith("unavailable: permission denied reading ")
    assert "energy_uj" in r.status and "root" in r.status


def test_rapl_without_zones_is_unavailable(tmp_path):
    (tmp_path / "class/powercap").mkdir(parents=True)
    r = RaplSource(tmp_path).read()
    assert r.watts is None and r.status.startswith("unavailable: no readable RAPL")


def test_detect_prefers_rapl_on_an_x86_host_and_says_so_when_nothing_exists(rapl_tree, tmp_path_factory):
    assert isinstance(detect_power_source(sysfs_root=rapl_tree, device_tree=rapl_tree / "no-dt"), RaplSource)

    empty = tmp_path_factory.mktemp("empty-sysfs")
    src = detect_power_source(sysfs_root=empty, device_tree=empty / "no-dt")
    assert isinstance(src, NoPowerSensor)
    r = src.read()
    assert r.source == "none" and r.watts is None and r.rails == []
    assert r.status.startswith("no power sensor: ") and "RAPL" in r.status

    off = detect_power_source("none").read()
    assert off.watts is None and off.status.startswith("no power sensor: ")
    with pytest.raises(ValueError, match="unknown power source"):
        detect_power_source("guess")


def test_detect_picks_pynq_rails_on_a_zynq_board_and_alveo_when_its_driver_is_loaded(tmp_path):
    dt = tmp_path / "device-tree"
    dt.mkdir()
    (dt / "compatible").write_bytes(b"xlnx,zynqmp-zcu104-revC\x00xlnx,zynqmp\x00")
    src = detect_power_source(sysfs_root=tmp_path, device_tree=dt)
    assert isinstance(src, RailsSource) and src.name == "pynq-rails"

    (tmp_path / "bus/pci/drivers/xclmgmt").mkdir(parents=True)
    src = detect_power_source(sysfs_root=tmp_path, device_tree=tmp_path / "no-dt")
    assert isinstance(src, RailsSource) and src.name == "alveo-xrt" and src.include == list(ALVEO_INPUT_RAILS)


def rail(power: float | None):
    return SimpleNamespace(power=None if power is None else SimpleNamespace(value=power))


def test_pynq_rails_sum_every_rail_with_a_power_sensor_and_name_them():
    rails = {"VCCINT": rail(1.25), "VCCBRAM": rail(0.25), "PSINT_FP": rail(0.5), "VCC3V3": rail(None)}
    r = RailsSource("pynq-rails", lambda: rails).read()
    assert r.ok and r.watts == pytest.approx(2.0)
    assert r.rails == ["PSINT_FP", "VCCBRAM", "VCCINT"]
    assert r.per_rail_w == {"PSINT_FP": 0.5, "VCCBRAM": 0.25, "VCCINT": 1.25}


def test_alveo_sums_only_the_card_input_rails():
    rails = {"12v_pex": rail(30.0), "12v_aux": rail(20.0), "3v3_pex": rail(2.0), "vccint": rail(40.0),
             "3v3_aux": rail(None)}
    r = RailsSource("alveo-xrt", lambda: rails, include=ALVEO_INPUT_RAILS).read()
    assert r.watts == pytest.approx(52.0) and r.rails == ["12v_pex", "12v_aux", "3v3_pex"]


def test_rails_without_power_sensors_or_failing_drivers_are_unavailable():
    r = RailsSource("pynq-rails", lambda: {}).read()          # Pynq-Z1/Z2 expose no rails
    assert r.watts is None and r.status == "unavailable: no power sensor on any rail"

    def broken():
        raise RuntimeError("No Devices Found")
    r = RailsSource("alveo-xrt", broken, include=ALVEO_INPUT_RAILS).read()
    assert r.watts is None and r.status == "unavailable: reading the rails failed: No Devices Found"


def test_temperature_from_thermal_zone_hwmon_and_zynq_ams(tmp_path):
    assert read_temperature(tmp_path) is None

    z = tmp_path / "class/thermal/thermal_zone0"
    z.mkdir(parents=True)
    (z / "type").write_text("acpitz\n")
    (z / "temp").write_text("41000\n")
    z1 = tmp_path / "class/thermal/thermal_zone1"
    z1.mkdir(parents=True)
    (z1 / "type").write_text("x86_pkg_temp\n")
    (z1 / "temp").write_text("55500\n")
    t = read_temperature(tmp_path)
    assert t.celsius == pytest.approx(55.5) and t.source == "thermal_zone1 (x86_pkg_temp)"

    hw = tmp_path / "class/hwmon/hwmon3"
    hw.mkdir(parents=True)
    (hw / "name").write_text("k10temp\n")
    (hw / "temp1_input").write_text("61250\n")
    assert read_temperature(tmp_path).celsius == pytest.approx(61.25)

    iio = tmp_path / "bus/iio/devices/iio:device0"
    iio.mkdir(parents=True)
    (iio / "name").write_text("ams\n")
    (iio / "in_temp7_raw").write_text("39000\n")
    (iio / "in_temp7_scale").write_text("7.771514892\n")
    (iio / "in_temp7_offset").write_text("-36058\n")
    t = read_temperature(tmp_path)
    assert t.celsius == pytest.approx((39000 - 36058) * 7.771514892 / 1000) and "ams" in t.source


class FixedSource:
    name = "fixed"

    def __init__(self, watts):
        self.watts = watts

    def read(self):
        from pynq_sparse.telemetry import PowerReading
        if self.watts is None:
            return PowerReading(self.name, None, status="unavailable: test")
        return PowerReading(self.name, self.watts, rails=["board"])


def test_monitor_relates_power_to_the_words_counted_in_the_interval(tmp_path):
    clock = FakeClock()
    mon = TelemetryMonitor(FixedSource(12.0), interval_s=1.0, sysfs_root=tmp_path, clock=clock)
    mon.count_words(300)
    clock.t += 2.0
    snap = mon.sample()
    assert snap.words_per_s == pytest.approx(150.0)
    assert snap.energy_per_word_j == pytest.approx(12.0 / 150.0)
    assert snap.words_total == 300

    clock.t += 1.0                                          # idle interval: no words, no energy per word
    snap = mon.sample()
    assert snap.words_per_s == 0.0 and snap.energy_per_word_j is None

    mon = TelemetryMonitor(FixedSource(None), sysfs_root=tmp_path, clock=clock)
    mon.count_words(10)
    clock.t += 1.0
    snap = mon.sample()
    assert snap.energy_per_word_j is None and snap.words_per_s == pytest.approx(10.0)


def test_monitor_thread_samples_and_stops(tmp_path):
    mon = TelemetryMonitor(FixedSource(3.0), interval_s=0.02, sysfs_root=tmp_path).start()
    try:
        import time
        deadline = time.monotonic() + 5
        while not mon.snapshot().power.ok and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mon.snapshot().power.watts == 3.0
    finally:
        mon.stop()
