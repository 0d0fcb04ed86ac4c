"""health --quarantine: under the nodes' locks, state first, then the MAAS tag; one failure never stops the rest."""

from __future__ import annotations

from fleet.commands.health import quarantine_nodes
from fleet.errors import MaasError
from fleet.state import StateDB


def test_every_node_is_quarantined_and_a_failed_tag_call_is_reported_not_fatal(tmp_path) -> None:
    db = StateDB(tmp_path / "state.db", run_id="sweep")
    tagged: list[str] = []

    def tag(name: str) -> None:
        if name == "gpu-001-02":
            raise MaasError("MAAS answered 503", node=name)
        tagged.append(name)

    reasons = {"gpu-001-01": "gpu_ecc_errors: 3", "gpu-001-02": "ib_ports: down", "gpu-001-03": "gpu_xid: 79"}
    problems = quarantine_nodes(db, reasons, tag, "provision.py health --quarantine")
    assert tagged == ["gpu-001-01", "gpu-001-03"]
    assert list(problems) == ["gpu-001-02"] and "MAAS answered 503" in problems["gpu-001-02"]
    for name in reasons:  # the state says quarantined, with the reason, for all three
        assert db.node(name).status == "quarantined" and reasons[name] in db.node(name).last_error
    assert StateDB(tmp_path / "state.db", run_id="next").acquire(list(reasons), "next run") is None  # released


def test_a_node_another_run_holds_is_left_alone_and_named(tmp_path) -> None:
    bringup = StateDB(tmp_path / "state.db", run_id="bring-up")
    bringup.acquire(["gpu-001-02"], "provision.py --rack 1")
    bringup.update("gpu-001-02", stage="os", status="running", current="configure")
    db = StateDB(tmp_path / "state.db", run_id="sweep")
    tagged: list[str] = []
    problems = quarantine_nodes(db, {"gpu-001-01": "x", "gpu-001-02": "y"}, tagged.append, "health")
    assert tagged == ["gpu-001-01"]
    assert "locked by another run: 'provision.py --rack 1'" in problems["gpu-001-02"]
    assert db.node("gpu-001-02").status == "running"  # the bring-up's record was not touched
    assert db.node("gpu-001-01").status == "quarantined"
