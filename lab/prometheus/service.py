"""Debian's Prometheus as a lab service, scraping the lab hosts' node exporters with the shipped rules.

It is the real server (prometheus 2.42 from Debian), so what a client sees is Prometheus's own: the
HTTP API (`/api/v1/query`, `/api/v1/alerts`, `/api/v1/targets`, `/-/ready`), targets from file_sd
files written by the control plane's own `fleet.prometheus.write_targets`, and the alert rules of
`monitoring/rules/` unchanged. Only the intervals are the lab's: scrape and rule evaluation every
few seconds instead of every 30-60 s, so a lab test sees an alert within seconds of the node's
health agent writing a CRITICAL verdict. It listens on 127.0.0.1 (`lab.ports.prometheus`).

A lab without hosts (`lab.hosts.max: 0`, the benchmark's) has no node exporter anywhere: Prometheus is
not started there, as the UFM is not for a site without a fabric plan. Scraping 1,280 addresses that
never answer cost it 16 s of CPU during a 1,280-node bring-up, on the cores the lab BMCs and MAAS share.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from fleet.prometheus import NODE_EXPORTER_PORT, Job, write_targets
from fleet.site import Site
from lab.service import LabService, ReadyCheck

NAME = "prometheus"
DEFAULT_PORT = 9090
REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "monitoring" / "rules"
SCRAPE_INTERVAL = "5s"
EVALUATION_INTERVAL = "2s"


def port(site: Site) -> int:
    return site.lab.ports.get(NAME, DEFAULT_PORT) if site.lab else DEFAULT_PORT


def api_url(site: Site) -> str:
    return f"http://127.0.0.1:{port(site)}"


def config(targets_dir: Path) -> dict:
    """prometheus.yml (pure): node exporters from file_sd, the repository's rule files."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": "4s",
                   "evaluation_interval": EVALUATION_INTERVAL},
        "rule_files": [str(RULES / "*.yml")],
        "scrape_configs": [{"job_name": "node", "file_sd_configs": [{"files": [str(targets_dir / "node.json")]}]}],
    }


def prepare(site: Site, lab_dir: Path) -> None:
    folder = lab_dir / NAME
    (folder / "data").mkdir(parents=True, exist_ok=True)
    write_targets(site.nodes.values(), folder / "targets", site.name, (Job("node", NODE_EXPORTER_PORT),))
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config(folder / "targets"), sort_keys=False),
                                           encoding="utf-8")


def wanted(site: Site) -> bool:
    """Only a lab with hosts has node exporters to scrape."""
    return site.lab is not None and site.lab.hosts.max_hosts > 0


def service(site: Site, lab_dir: Path) -> list[LabService]:
    if not wanted(site):
        return []
    folder = lab_dir / NAME
    return [LabService(
        name=NAME,
        argv=["prometheus", f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
              f"--web.listen-address=127.0.0.1:{port(site)}", "--storage.tsdb.retention.time=1d"],
        ready=ReadyCheck(url=f"{api_url(site)}/-/ready"),
    )]
