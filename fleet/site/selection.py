"""Which nodes a command means: `--rack 12-15` and `--nodes a,b` resolved against the site."""

from __future__ import annotations

from fleet.site.model import Node, Rack, Site
from fleet.site.schema import nearest


def parse_racks(text: str) -> list[int]:
    """'12' -> [12]; '12-15' -> [12, 13, 14, 15]; ValueError on anything else."""
    start, sep, end = text.strip().partition("-")
    if not start.isdigit() or (sep and not end.isdigit()):
        raise ValueError(f"'{text}' is not a rack number or range (e.g. 12 or 12-15)")
    first, last = int(start), int(end) if sep else int(start)
    if last < first:
        raise ValueError(f"'{text}': the range ends before it starts")
    return list(range(first, last + 1))


def select_nodes(site: Site, racks: list[str] | None = None, names: list[str] | None = None) -> list[Node]:
    """Resolve --rack/--nodes selections; ValueError names the unknown rack or node."""
    chosen: dict[str, Node] = {}
    known = {rack.number: rack for rack in site.racks}
    for text in racks or []:
        for number in parse_racks(text):
            if number not in known:
                raise ValueError(f"rack {number} is not in site '{site.name}' (racks {_span(known)})")
            chosen.update((node.hostname, node) for node in known[number].nodes)
    for name in names or []:
        if name not in site.nodes:
            near = nearest(name, set(site.nodes))
            hint = f"; did you mean {near}?" if near else ""
            raise ValueError(f"node '{name}' is not in site '{site.name}'{hint}")
        chosen[name] = site.nodes[name]
    return sorted(chosen.values(), key=lambda n: (n.rack, n.slot))


def _span(racks: dict[int, Rack]) -> str:
    numbers = sorted(racks)
    return f"{numbers[0]}-{numbers[-1]}" if numbers else "none"
