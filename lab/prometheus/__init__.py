"""The lab's Prometheus: Debian's server scraping the lab hosts, with the repository's alert rules."""
