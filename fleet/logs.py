"""The node's name in log records, one way for every module: `record.node`, printed by `NodeFormatter`.

With hundreds of nodes logging from their own threads, a record that does not say which node it
is about is noise. Library code logs through `node_log(log, hostname)`; the CLI's formatter puts
the name in front of the message, and records about no node print none.
"""

from __future__ import annotations

import logging


def node_log(logger: logging.Logger, hostname: str) -> logging.LoggerAdapter:
    """A logger whose records carry `node=hostname`."""
    return logging.LoggerAdapter(logger, {"node": hostname})


class NodeFormatter(logging.Formatter):
    """Use `%(node)s` in the format: the record's node and a space, or nothing."""

    def format(self, record: logging.LogRecord) -> str:
        node = getattr(record, "node", "")
        record.node = f"{node} " if node and not str(node).endswith(" ") else node
        return super().format(record)
