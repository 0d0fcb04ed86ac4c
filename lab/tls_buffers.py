"""Smaller read buffers for the lab's asyncio TLS servers and clients (the BMC front, the lab MAAS).

asyncio gives every TLS connection a zeroed read buffer of `SSLProtocol.max_size` bytes, 256 KiB
(CPython 3.11, Lib/asyncio/sslproto.py: `self._ssl_buffer = bytearray(self.max_size)` in
`SSLProtocol.__init__`). The BMC front accepts two to three new connections per node in a bring-up
wave (ours, then MAAS's driver per power action), and the zeroing lands on fresh pages: on the
project's VM a first touch of a page the guest had handed back to its host costs ~12 us instead of
~2.5 us (virtio-balloon free page reporting; bench/README "Scale, tenth pass"). py-spy put that
one line at 10.7% of the front's CPU in a 1,280-node wave, and `perf` put 72% of its page faults in
the memset. A TLS record is at most 16 KiB of plaintext (RFC 8446 section 5.1) plus 256 bytes, so
32 KiB still takes a whole record per read; what a client sees is unchanged.
"""

from __future__ import annotations

from asyncio import sslproto

READ_BUFFER_BYTES = 32 * 1024


def use_small_tls_buffers() -> None:
    """Every asyncio TLS connection this process opens or accepts from now on reads into 32 KiB."""
    sslproto.SSLProtocol.max_size = READ_BUFFER_BYTES
