"""Variant names, quant parsing and the hardware probe (NVML faked: this machine has no GPU)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from engine.errors import InvalidRequest
from engine.services.hub import hardware
from engine.services.hub.catalog import FALLBACK, Catalog, parse_id, quant_of


@pytest.mark.parametrize(("name", "quant"), [
    ("Nemotron-3-Nano-30B-A3B-Q4_K_M.gguf", "Q4_K_M"),
    ("Nemotron-3-Nano-30B-A3B-UD-Q4_K_XL.gguf", "UD-Q4_K_XL"),
    ("BF16/Nemotron-3-Nano-30B-A3B-BF16-00001-of-00002.gguf", "BF16"),
    ("nvidia_Nemotron-3-Nano-30B-A3B-IQ4_XS.gguf", "IQ4_XS"),
    ("Nemotron-Nano-3-30B-A3B-Q8_0.gguf", "Q8_0"),
    ("mmproj-F16.gguf", None),
    ("model-00001-of-00013.safetensors", None),
])
def test_quant_of(name: str, quant: str | None) -> None:
    assert quant_of(name) == quant


def test_variant_ids() -> None:
    assert parse_id("Q4_K_M") == ("unsloth", "Q4_K_M")
    assert parse_id("bartowski:Q5_K_M") == ("bartowski", "Q5_K_M")
    assert parse_id("safetensors") == ("nvidia", "BF16")
    with pytest.raises(InvalidRequest, match="Unknown source"):
        parse_id("someone:Q4_K_M")
    with pytest.raises(InvalidRequest, match="Choose one of"):
        Catalog(FALLBACK, online=False).find("Q2_K")


class FakeNvml(types.ModuleType):
    """NVML as the driver answers it on a one-GPU machine (the test machine has no NVIDIA GPU)."""

    def __init__(self) -> None:
        super().__init__("pynvml")

    def nvmlInit(self) -> None: ...
    def nvmlShutdown(self) -> None: ...
    def nvmlDeviceGetCount(self) -> int:
        return 1

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        return i

    def nvmlDeviceGetName(self, h: int) -> bytes:
        return b"NVIDIA RTX PRO 6000"

    def nvmlDeviceGetMemoryInfo(self, h: int) -> types.SimpleNamespace:
        return types.SimpleNamespace(total=96 * 1000**3, free=90 * 1000**3)


def test_hardware_reads_gpus_ram_and_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    hw = hardware.detect(tmp_path / "not" / "created" / "yet")
    assert hw.gpus == (hardware.Gpu("NVIDIA RTX PRO 6000", 96 * 1000**3, 90 * 1000**3),)
    assert hw.gpu_free_bytes == 90 * 1000**3
    assert hw.ram_total_bytes >= hw.ram_available_bytes > 0 and hw.disk_free_bytes > 0
    assert "NVIDIA RTX PRO 6000: 90.0 GB free of 96.0 GB" in hw.summary()


def test_no_nvidia_driver_means_no_gpu() -> None:
    # the real nvidia-ml-py on this machine: it is installed, the driver is not
    assert hardware.gpus() == ()
