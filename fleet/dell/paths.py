"""Reading Redfish bodies by declared JSON paths: the one walk the resource modules share.

Each resource module declares its paths once, at its top, as key tuples (`VERSION = ("Version",)`,
`SIMPLE_UPDATE = ("Actions", "#UpdateService.SimpleUpdate", "target")`), the common ones here;
`get` follows one and `members` reads a collection. A missing step reads as None, so an iDRAC that leaves a property
out (older firmware does) gives the reader a default to decide on rather than a KeyError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Properties of Redfish's common Resource and ResourceCollection schemas, which every iDRAC resource has.
ODATA_ID = ("@odata.id",)
ID = ("Id",)
NAME = ("Name",)
MESSAGE = ("Message",)
MESSAGE_ID = ("MessageId",)
MEMBERS = ("Members",)
NEXT = ("Members@odata.nextLink",)


def get(data: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or None where a step is missing or not an object."""
    for key in path:
        data = data.get(key) if isinstance(data, Mapping) else None
    return data


def members(body: Any) -> list[Mapping[str, Any]]:
    """A collection's `Members` that are objects (an entry that is not one is skipped)."""
    return [member for member in get(body, MEMBERS) or [] if isinstance(member, Mapping)]
