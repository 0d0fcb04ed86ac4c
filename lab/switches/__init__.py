"""The lab's SSH switch simulators: Dell OS10, Cumulus Linux (NVUE) and MLNX-OS, driven by netmiko unchanged."""
