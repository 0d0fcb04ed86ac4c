"""Node-side health checks for GPU nodes.

Runs ON each node with the standard library only (plus nvidia-ml-py when it is importable),
because a health agent must not depend on the very software stack it is meant to judge.
Gathering (NVML, nvidia-smi, sysfs, the kernel log) is kept apart from deciding: every check
is a pure function of gathered readings and the site's expectations, so the same checks run
on real hardware, on lab fixture files and in unit tests.
"""

SCHEMA_VERSION = 1
