"""The lab's UFM Enterprise REST simulator (see server.py for what it copies from the real one)."""
