"""The digest an image tag has at the reference registry (what every agent must resolve it to).

The reference is the origin's upstream registry, or the Kraken proxy, both speaking the Docker registry
API v2: `HEAD /v2/<repo>/manifests/<tag>` with the same Accept header the node probe sends answers the
digest in `Docker-Content-Digest`. TLS is verified unless the site says otherwise, per request (this
machine's REQUESTS_CA_BUNDLE would override a Session's verify).
"""

from __future__ import annotations

import requests

from fleet.errors import FleetError
from fleet.kraken.node_probe import MANIFEST_TYPES, split_image


class RegistryError(FleetError):
    """The reference registry could not say what an image tag is."""


def resolve_digest(registry_url: str, image: str, *, verify: bool | str = True, timeout_s: float = 15.0) -> str:
    repo, ref = split_image(image)
    url = f"{registry_url.rstrip('/')}/v2/{repo}/manifests/{ref}"
    try:
        answer = requests.head(url, headers={"Accept": ", ".join(MANIFEST_TYPES)}, verify=verify, timeout=timeout_s)
    except requests.RequestException as err:
        raise RegistryError(f"cannot reach the reference registry for {image}", endpoint=registry_url,
                            service_message=str(err), hint="check kraken.reference_registry in the site") from None
    if answer.status_code != 200:
        raise RegistryError(f"the reference registry does not have {image}", endpoint=registry_url,
                            status=answer.status_code, hint="push the image, or name a tag that exists")
    digest = answer.headers.get("Docker-Content-Digest")
    if not digest:
        raise RegistryError(f"the reference registry gave no digest for {image}", endpoint=registry_url,
                            hint="the registry must speak the Docker registry API v2")
    return digest
