"""The plan in NVIDIA's formats: NDT CSV rows and ibdiagnet topology blocks, exactly."""

from __future__ import annotations

from pathlib import Path

from fleet.fabric.export import ibdiagnet_topology, ndt_csv
from fleet.fabric.topology import FabricSwitch, Link, Topology
from fleet.site import Bmc, Hca, Node

TOPOLOGY = Topology(Path("fabric.yml"), 1, 400, "4x",
                    {"leaf-a": FabricSwitch("leaf-a", "leaf", 0, "0x01", 64),
                     "spine-a": FabricSwitch("spine-a", "spine", 0, "0x02", 64)},
                    (Link("leaf-a", 33, "spine-a", 1),))
NODE = Node("gpu-001-01", 1, 1, "gpu", "X", Bmc("127.0.0.1:1", "bmc"), "02:00:00:00:00:01", "198.18.1.11", 8,
            (Hca("mlx5_0", "0xb8", "leaf-a", 1, 400),))


def test_ndt_csv_has_one_row_per_cable_in_the_ndt_plugins_format() -> None:
    assert ndt_csv(TOPOLOGY, [NODE]).splitlines() == [
        "#StartDevice,StartPort,EndDevice,EndPort,LinkType",
        "gpu-001-01,gpu-001-01 mlx5_0,leaf-a,Port 1,Data",
        "leaf-a,Port 33,spine-a,Port 1,Data",
    ]


def test_ibdiagnet_topology_writes_both_ends_of_every_cable() -> None:
    assert ibdiagnet_topology(TOPOLOGY, [NODE]).splitlines()[1:] == [
        "", "HCA-1 gpu-001-01/mlx5_0", "   P1 -4x-100G-> MQM9700 leaf-a P1",
        "", "MQM9700 leaf-a", "   P1 -4x-100G-> HCA-1 gpu-001-01/mlx5_0 P1", "   P33 -4x-100G-> MQM9700 spine-a P1",
        "", "MQM9700 spine-a", "   P1 -4x-100G-> MQM9700 leaf-a P33",
    ]
