"""The Ansible baseline for the out-of-band benchmark: community.general's Redfish modules."""
