"""Lab BMCs: sushy-tools' fake-driver emulator behind a per-node HTTPS front with fault injection."""
