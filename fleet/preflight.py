"""Before any node is touched: can the run read its secrets and use MAAS at all?

A secret that cannot be read (an undecryptable vault, a variable not set), a MAAS that is down, or
one that refuses the site's API key fails every node the same way. Left to the stages, each node
would retry, back off and end quarantined for a fault that is not the node's (and stay quarantined
once it is fixed). Reading every credential the run needs, then authenticated MAAS reads, turns
that into one run-wide, one-paragraph error (exit 1) before a BMC is asked anything. The first of
those reads is MAAS's `whoami`: who our key is, which every ownership decision needs (a machine
another MAAS user owns is hands-off), so a key MAAS refuses fails here, not on the first node.
"""

from __future__ import annotations

from fleet.errors import MaasError
from fleet.site import Node, Site, resolve_credentials

PREFLIGHT_TIMEOUT_S = 30.0
# What MaasClient says when MAAS itself could not be used (as opposed to "this node is not in MAAS").
_UNUSABLE = ("cannot reach MAAS", "MAAS did not")


def unusable(err: MaasError) -> bool:
    """MAAS refused our key or permission (401/403), erred (5xx), or did not answer: nothing about the node."""
    if isinstance(err.status, int):
        return err.status in (401, 403) or err.status >= 500
    return err.message.startswith(_UNUSABLE)


def check(site: Site, nodes: list[Node]) -> str:
    """MAAS's credential, every one the selected nodes' BMCs use, then MAAS itself: FleetError (run-wide).

    Returns our MAAS user name, which the run's stages then use without asking MAAS again."""
    for name in [site.maas.credentials, *sorted({node.bmc.credentials for node in nodes})]:
        resolve_credentials(site, name)
    return check_maas(site, nodes[0])


def check_maas(site: Site, node: Node) -> str:
    """Our MAAS user, then the first selected node looked up: MaasError (run-wide) when MAAS cannot be used."""
    from fleet.maas import MaasClient

    with MaasClient(site.maas, resolve_credentials(site, site.maas.credentials), site.maas_tls,
                    request_timeout_s=PREFLIGHT_TIMEOUT_S) as client:
        try:
            me = client.whoami()
            client.find_machine(node)
        except MaasError as err:
            if unusable(err):
                err.node = None  # not the node's fault: the message names MAAS's URL
                err.message = f"MAAS cannot be used, nothing was touched: {err.message}"
                raise
    return me
