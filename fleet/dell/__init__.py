"""Dell iDRAC 9 resources beyond the DMTF basics: BIOS, the job queue, firmware, the Lifecycle Controller, logs.

One small module per resource, each with its JSON paths declared once at the top (sushy's Dell layer,
openstack/sushy-oem-idrac, is the model) and read through `paths` (`get`, `members`): `bios`, `jobs`,
`lc`, `firmware`, `logs`; `compliance` reads a node against the site's pins in at most three
requests. Every request goes through the
node's `fleet.redfish.Bmc` (`Bmc.request`): the same DMTF `redfish` client, explicit CA file,
`trust_env` off, per-BMC lock, fleet-wide cap, retries and counters. Each module keeps its decisions
(diffs, verdicts, plans) as pure functions next to the thin calls that act on them.
"""
