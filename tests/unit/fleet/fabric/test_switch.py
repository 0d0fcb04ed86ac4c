"""Switch config decisions without a switch: templates per device type, the owned diff, what to send."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.fabric.switch import missing, normalise, owned, render, unified_diff
from fleet.site import Site, load_site

LAB = Path(__file__).resolve().parents[4] / "inventory" / "lab" / "site.yml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(LAB)


def test_the_dell_template_describes_each_rack_port_by_node_and_puts_it_in_the_mgmt_vlan(site: Site) -> None:
    lines = render(site, site.switches["mgmt-r012"])
    start = lines.index("interface ethernet1/1/3")
    assert lines[start:start + 5] == ["interface ethernet1/1/3", ' description "gpu-012-03 (198.18.12.13)"',
                                      " mtu 9216", " switchport access vlan 10", " no shutdown"]
    assert lines[:4] == ["hostname mgmt-r012", "ntp server 198.18.0.1", "logging server 198.18.0.1", "lldp enable"]


def test_the_mlnxos_template_describes_ib_ports_from_the_fabric_plan(site: Site) -> None:
    lines = render(site, site.switches["leaf-g01-r4"])
    assert 'interface ib 1/15 description "gpu-012-03 mlx5_4"' in lines
    assert 'interface ib 1/33 description "spine-p00-r4-s0 port 9"' in lines
    assert len([line for line in lines if line.startswith("interface ib")]) == 64


def test_the_nvue_template_is_nv_set_lines(site: Site) -> None:
    lines = render(site, site.switches["fe-g01"])
    assert all(line.startswith("nv set ") for line in lines)
    assert "nv set interface swp11 bridge domain br_default access 20" in lines


def test_the_diff_covers_only_what_the_template_owns() -> None:
    running = normalise("! Version 10.5\nhostname a\nip domain-name x\ninterface ethernet1/1/1\n  mtu 1500\n"
                        "interface ethernet1/1/9\n  description other\n", "dell_os10")
    desired = ["hostname a", "interface ethernet1/1/1", " mtu 9216"]
    assert owned(running, desired) == ["hostname a", "interface ethernet1/1/1", " mtu 1500"]
    assert unified_diff("a", running, desired).splitlines()[-2:] == ["- mtu 1500", "+ mtu 9216"]
    assert missing(running, desired) == ["interface ethernet1/1/1", "mtu 9216", "exit"]


def test_nothing_is_missing_once_the_running_config_has_every_line() -> None:
    desired = ["ntp server 10.0.0.1", 'interface ib 1/1 description "x"']
    running = normalise('##\n   hostname a\n   ntp server 10.0.0.1\n   interface ib 1/1 description "x"\n',
                        "mellanox_mlnxos")
    assert missing(running, desired) == [] and unified_diff("a", running, desired) == ""
