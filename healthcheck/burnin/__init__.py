"""Burn-in: prove a node computes right, at full speed, over its links, before it may join training.

The health sweep (``healthcheck``) looks at what a node reports about itself; burn-in makes it
work and checks the work. The failures it is there for give no error: a GPU that returns wrong
numbers, a GPU that is slow (an ECC storm, a bad power stage), a PCIe link that trained at a lower
generation and only shows under load, an InfiniBand link at half speed.

Layout: pure decision modules (``tolerance``, ``decide``, ``straggler``, ``perftest``, ``ncclplan``,
``platform``) hold every rule and are tested without a GPU; ``gpu``, ``memory`` and ``nccl`` do
the work with PyTorch where it is installed and write a raw record that ``decide`` judges, so
recorded device runs (tests/fixtures/device-h200-burnin/) drive the same decisions in tests.
Nothing here imports ``fleet``.
"""
