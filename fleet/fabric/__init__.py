"""The InfiniBand fabric: the cabling plan, UFM, cabling checks, bad-port triage and switch configuration."""
