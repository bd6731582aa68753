"""Renders resources/icons/nemotron-desk.svg to the PNG sizes the .deb installs and the Windows .ico.

The PNGs and the .ico are committed; run this again after changing the SVG:
    python installers/render_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
PNG_SIZES = (48, 128, 256)


def main() -> int:
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - QImage needs one
    renderer = QSvgRenderer(str(ICONS / "nemotron-desk.svg"))
    if not renderer.isValid():
        print("resources/icons/nemotron-desk.svg is not a valid SVG", file=sys.stderr)
        return 1
    for size in PNG_SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        renderer.render(painter)
        painter.end()
        image.save(str(ICONS / f"nemotron-desk-{size}.png"))
        if size == 256 and not image.save(str(ICONS / "nemotron-desk.ico")):
            print("Qt could not write the .ico (its imageformats plugin is missing)", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
