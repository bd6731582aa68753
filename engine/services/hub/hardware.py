"""What the machine has for a model: NVIDIA GPUs (name, free/total memory), RAM, free disk.

GPUs are read through NVML (the nvidia-ml-py package); a machine without an NVIDIA driver simply has
no GPUs here. Any other failure to read them is not "no GPU": the GPUs are unknown, and why is said.
RAM comes from /proc/meminfo on Linux, sysconf elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Gpu:
    name: str
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class Hardware:
    gpus: tuple[Gpu, ...]
    ram_total_bytes: int
    ram_available_bytes: int
    disk_free_bytes: int
    disk_path: Path
    gpu_problem: str = ""  # why the GPUs could not be read ("" when they could, or there are none)

    @property
    def gpu_free_bytes(self) -> int:
        """Free memory of the GPU with the most free memory (the one a model goes to)."""
        return max((g.free_bytes for g in self.gpus), default=0)

    def summary(self) -> str:
        gpus = "; ".join(f"{g.name}: {gb(g.free_bytes)} free of {gb(g.total_bytes)}" for g in self.gpus)
        if self.gpu_problem:
            gpus = f"unknown: {self.gpu_problem} (the estimates below count no GPU)"
        return "\n".join([
            f"GPU: {gpus or 'no NVIDIA GPU found (models run on the CPU)'}",
            f"RAM: {gb(self.ram_available_bytes)} available of {gb(self.ram_total_bytes)}",
            f"Disk: {gb(self.disk_free_bytes)} free in {self.disk_path}",
        ])


def gb(n: int | float) -> str:
    """Bytes for people: `22.8 GB`, `50 MB` (decimal units, as disks and the Hub show them)."""
    if abs(n) < 1000**3:
        return f"{n / 1000**2:.0f} MB"
    return f"{n / 1000**3:.1f} GB"


#: NVML's words for "this machine has no NVIDIA driver or GPU": no GPU, not a failure.
NO_NVIDIA = ("NVMLError_LibraryNotFound", "NVMLError_DriverNotLoaded", "NVMLError_NoDevice")


def gpus() -> tuple[Gpu, ...]:
    """NVIDIA GPUs through NVML; none when the driver or a GPU is missing, or they cannot be read."""
    return probe_gpus()[0]


def probe_gpus() -> tuple[tuple[Gpu, ...], str]:
    """(GPUs, problem): the problem says why the GPUs could not be read; "" when they could, and when
    the machine has no NVIDIA driver or GPU."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return (), "the nvidia-ml-py package that reads them is not installed"
    nvml: Any = pynvml
    no_nvidia = tuple(kind for name in NO_NVIDIA if isinstance(kind := getattr(nvml, name, None), type))
    try:
        nvml.nvmlInit()
    except Exception as exc:  # NVML's errors are many classes, made at import; sorted by kind here
        if no_nvidia and isinstance(exc, no_nvidia):
            return (), ""
        return (), f"the NVIDIA driver could not be asked ({_reason(exc)})"
    try:
        found = []
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            mem = nvml.nvmlDeviceGetMemoryInfo(handle)
            found.append(Gpu(name.decode() if isinstance(name, bytes) else str(name), int(mem.total), int(mem.free)))
        return tuple(found), ""
    except Exception as exc:  # a GPU fell off the bus, no permission, a driver/library mismatch, ...
        return (), f"reading the GPUs failed ({_reason(exc)})"
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()


def _reason(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{type(exc).__name__}{': ' + detail if detail else ''}"


def ram() -> tuple[int, int]:
    """(total, available) bytes of RAM."""
    try:
        fields = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = int(value.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0))
    except (OSError, KeyError, ValueError, IndexError):
        pass
    if sys.platform == "win32":
        return _windows_ram()
    try:
        page = os.sysconf("SC_PAGE_SIZE")
        return os.sysconf("SC_PHYS_PAGES") * page, os.sysconf("SC_AVPHYS_PAGES") * page
    except (ValueError, OSError, AttributeError):
        return 0, 0


def _windows_ram() -> tuple[int, int]:
    import ctypes

    class MemoryStatus(ctypes.Structure):
        _fields_ = [("length", ctypes.c_ulong), ("load", ctypes.c_ulong), ("total", ctypes.c_ulonglong),
                    ("available", ctypes.c_ulonglong), ("page_total", ctypes.c_ulonglong),
                    ("page_free", ctypes.c_ulonglong), ("virtual_total", ctypes.c_ulonglong),
                    ("virtual_free", ctypes.c_ulonglong), ("extended", ctypes.c_ulonglong)]

    status = MemoryStatus()
    status.length = ctypes.sizeof(MemoryStatus)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined]
        return 0, 0
    return int(status.total), int(status.available)


def existing_parent(path: Path) -> Path:
    """The folder itself or its nearest existing parent (models go to folders not created yet)."""
    path = path.expanduser().absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def disk_free(path: Path) -> int:
    return shutil.disk_usage(existing_parent(path)).free


def detect(models_dir: Path) -> Hardware:
    total, available = ram()
    found, problem = probe_gpus()
    return Hardware(found, total, available, disk_free(models_dir), models_dir, problem)
