"""fleet.site.dell: BIOS pins, the maintenance window and firmware pins as the site declares them."""

from __future__ import annotations

from pathlib import Path

from fleet.site import load_site
from fleet.site.dell import MaintenanceWindow, parse_firmware
from fleet.site.schema import Problems

EXAMPLE = Path(__file__).resolve().parents[3] / "inventory" / "example-production" / "site.yml"


def test_the_example_site_pins_bios_firmware_and_a_window():
    site = load_site(EXAMPLE)
    assert site.bios.apply_time == "InMaintenanceWindowOnReset"
    assert site.bios.attributes["SriovGlobalEnable"] == "Enabled"
    assert site.maintenance_window == MaintenanceWindow("2026-12-05T22:00:00+00:00", 14400)
    pins = {pin.component: pin for pin in site.firmware.components}
    assert pins["idrac"].match == "Integrated Dell Remote Access Controller"  # the default for the name
    assert pins["hca"].apply == "node" and pins["nic"].match == "Broadcom"
    assert site.firmware.image_url(pins["bios"]) == "http://repo.dc1.example.com/dell/BIOS_2.3.5_LN64.BIN"


def test_a_component_without_a_default_name_needs_match_and_the_defaults_hold():
    problems = Problems()
    settings = parse_firmware(Path("site.yml"), {"components": {"fpga": {"version": "1.2"}}}, problems)
    assert [p.key for p in problems.problems] == ["firmware.components.fpga.match"]
    assert (settings.max_parallel, settings.transfer) == (8, "pull")


def test_the_window_knows_whether_now_is_inside_it():
    window = MaintenanceWindow("2026-12-05T22:00:00+00:00", 3600)
    assert window.contains(window.start_s + 10) and not window.contains(window.start_s - 10)
    assert not window.contains(window.start_s + 3601)
