"""The lab switch CLIs as pure interpreters: modes, prompts, rejection, saving, the pager."""

from __future__ import annotations

from lab.switches.cli import PAGE_LINES, CumulusNvue, DellOs10, MellanoxMlnxos, SwitchState


def test_dell_os10_modes_and_prompts_follow_netmikos_expectations() -> None:
    cli = DellOs10(SwitchState("sw1", ["hostname sw1"]))
    assert cli.prompt() == "sw1#"
    cli.handle("configure terminal")
    assert cli.prompt() == "sw1(config)#"
    cli.handle("interface ethernet1/1/2")
    assert cli.prompt() == "sw1(conf-if-eth1/1/2)#"
    assert cli.handle("bogus") == "% Error: Unrecognized command."
    cli.handle("mtu 9216")
    cli.handle("mtu 1500")  # one value: the second replaces the first
    cli.handle("end")
    assert cli.state.running == ["hostname sw1", "interface ethernet1/1/2", " mtu 1500"] and cli.state.saved == []
    cli.handle("write memory")
    assert cli.state.saved == cli.state.running


def test_mlnxos_needs_enable_before_config_and_exits_one_level_at_a_time() -> None:
    cli = MellanoxMlnxos(SwitchState("ib1", ["hostname ib1"]))
    assert cli.prompt() == "ib1 [standalone: master] > "
    assert cli.handle("configure terminal").startswith("% Unrecognized command")
    cli.handle("enable")
    cli.handle("configure terminal")
    assert cli.prompt() == "ib1 [standalone: master] (config) # "
    cli.handle("exit")
    assert cli.prompt() == "ib1 [standalone: master] # "


def test_nvue_stages_until_apply_and_keeps_until_save() -> None:
    cli = CumulusNvue(SwitchState("fe", ["nv set system hostname fe"]))
    cli.handle("nv set interface swp1 link mtu 9216")
    assert cli.state.running == ["nv set system hostname fe"]
    assert cli.handle("nv config apply -y") == "applied [rev_id: 2]"
    assert cli.handle("nv config show -o commands").splitlines()[-1] == "nv set interface swp1 link mtu 9216"
    assert cli.state.saved == []
    cli.handle("nv config save")
    assert cli.state.saved == cli.state.running
    assert cli.handle("nv set nonsense x").startswith("Error: Invalid Command")


def test_the_pager_splits_long_output_until_paging_is_turned_off() -> None:
    cli = DellOs10(SwitchState("sw1", [f"ntp server 10.0.0.{n}" for n in range(60)]))
    text = cli.handle("show running-configuration")
    assert len(cli.page(text)) == 3 and all(len(p.split("\n")) <= PAGE_LINES for p in cli.page(text))
    cli.handle("terminal length 0")
    assert cli.page(text) == [text]
