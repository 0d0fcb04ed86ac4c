"""Lab MAAS: a MAAS 2.0 API simulator that python-libmaas talks to unchanged (see server.py)."""
