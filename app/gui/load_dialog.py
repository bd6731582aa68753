"""The model's load settings: GPU layers, context length, CPU threads (remembered in QSettings)."""

from __future__ import annotations

from app.gui.qt import QCheckBox, QDialog, QDialogButtonBox, QFormLayout, QSettings, QSpinBox, QWidget
from engine.api import LlamaLoadOptions, LoadSpec, TorchLoadOptions


def saved_options() -> LlamaLoadOptions:
    s = QSettings()
    defaults = LlamaLoadOptions()
    return LlamaLoadOptions(
        n_gpu_layers=int(str(s.value("load/n_gpu_layers", defaults.n_gpu_layers))),
        n_ctx=int(str(s.value("load/n_ctx", defaults.n_ctx))),
        n_threads=int(str(s.value("load/n_threads", 0))) or None,
        flash_attn=str(s.value("load/flash_attn", "true")).lower() == "true",
    )


def saved_spec(path: str | None) -> LoadSpec:
    """What to load with the saved settings: a GGUF runs on llama.cpp, a Hugging Face folder on torch."""
    llama = saved_options()
    return LoadSpec(path, llama, TorchLoadOptions(n_ctx=llama.n_ctx, n_threads=llama.n_threads))


class LoadSettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Load settings")
        current = saved_options()
        self.gpu_layers = QSpinBox(self)
        self.gpu_layers.setRange(-1, 999)
        self.gpu_layers.setSpecialValueText("all")
        self.gpu_layers.setValue(current.n_gpu_layers)
        self.gpu_layers.setToolTip("Layers on the GPU; fewer when the model does not fit (the rest run on the CPU)")
        self.context = QSpinBox(self)
        self.context.setRange(256, 1 << 20)
        self.context.setSingleStep(1024)
        self.context.setValue(current.n_ctx)
        self.context.setToolTip("Tokens the conversation may hold; only 6 of the 52 layers keep a cache")
        self.threads = QSpinBox(self)
        self.threads.setRange(0, 256)
        self.threads.setSpecialValueText("automatic")
        self.threads.setValue(current.n_threads or 0)
        self.flash = QCheckBox("Flash attention", self)
        self.flash.setChecked(current.flash_attn)
        form = QFormLayout(self)
        form.addRow("GPU layers", self.gpu_layers)
        form.addRow("Context length", self.context)
        form.addRow("CPU threads", self.threads)
        form.addRow(self.flash)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def accept(self) -> None:
        s = QSettings()
        s.setValue("load/n_gpu_layers", self.gpu_layers.value())
        s.setValue("load/n_ctx", self.context.value())
        s.setValue("load/n_threads", self.threads.value())
        s.setValue("load/flash_attn", "true" if self.flash.isChecked() else "false")
        super().accept()
