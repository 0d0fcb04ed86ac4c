"""The lab's registries and Redis: Debian's docker-registry (distribution) and redis-server, for Kraken's tests."""
