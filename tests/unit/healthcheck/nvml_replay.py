"""Replay NVML answers recorded on a real GPU (tests/fixtures/device-h200/nvml.json).

Behaves like the parts of pynvml the health checks call, so ``read_nvml`` runs its production
code against what the real H200 answered, NotSupported errors included.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


class NvmlReplay:
    NVMLError = NVMLError

    def __init__(self, path: Path) -> None:
        self.data = json.loads(path.read_text())

    def _answer(self, table: dict[str, Any], key: str) -> Any:
        entry = table.get(key)
        if entry is None:
            raise NVMLError(2)  # InvalidArgument: never recorded, e.g. a link beyond the last
        if "error" in entry:
            raise NVMLError(entry.get("code", 999))
        value = entry["value"]
        if key.startswith("nvmlDeviceGetPciInfo"):
            return type("PciInfo", (), value)()
        return value

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlSystemGetDriverVersion(self) -> str:
        return self._answer(self.data["system"], "nvmlSystemGetDriverVersion()")

    def nvmlDeviceGetCount(self) -> int:
        return len(self.data["gpus"])

    def nvmlDeviceGetHandleByIndex(self, index: int) -> dict[str, Any]:
        return self.data["gpus"][index]

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("nvmlDevice"):
            raise AttributeError(name)

        def call(handle: dict[str, Any], *args: Any) -> Any:
            return self._answer(handle, f"{name}({','.join(str(a) for a in args)})")

        return call
