"""The Qt binding survives a long stream of signals (PySide6 6.12.0 did not: a refcount bug crashed
the process with "deallocating None" after a few hundred thousand emissions, i.e. one long answer)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
from PySide6.QtCore import QObject, Signal
class E(QObject):
    s = Signal(int)
e = E()
seen = []
e.s.connect(lambda v: None)
e.s.connect(seen.append)
for i in range(400_000):
    e.s.emit(i)
print(len(seen))
"""


def test_many_signal_emissions_do_not_crash() -> None:
    # In a child process: the failure is a fatal error that would take the test runner down with it.
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stdout.strip() == "400000"
