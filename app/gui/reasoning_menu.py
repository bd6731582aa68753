"""The Reasoning menu: "Answer now" (with its window-wide key) and the loop detection setting.

The setting (off / warn / end) is kept in QSettings under `reasoning/loop_detection` and goes into
each request (GenerationRequest.loop_detection, through TurnSettings).

Signals:
    answerNowRequested()   the menu item or its key
"""

from __future__ import annotations

from app.gui.qt import QAction, QActionGroup, QKeySequence, QMenu, QSettings, QWidget, Signal
from app.gui.steering import ANSWER_NOW_KEY

LOOP_SETTING = "reasoning/loop_detection"
#: (mode, menu text) for GenerationRequest.loop_detection.
LOOP_MODES = (("off", "&Off"), ("warn", "&Warn me (Answer now or Stop)"),
              ("end", "&End the reasoning automatically"))
DEFAULT_LOOP_MODE = "warn"


def saved_loop_detection() -> str:
    mode = str(QSettings().value(LOOP_SETTING, DEFAULT_LOOP_MODE))
    return mode if mode in dict(LOOP_MODES) else DEFAULT_LOOP_MODE


class ReasoningMenu(QMenu):
    answerNowRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("&Reasoning", parent)
        self.answer_now = QAction("&Answer now", self)
        self.answer_now.setShortcut(QKeySequence(ANSWER_NOW_KEY))
        self.answer_now.setToolTip("End the thinking now; the model answers from it")
        self.answer_now.setEnabled(False)  # while a reasoning streams
        self.answer_now.triggered.connect(self.answerNowRequested)
        self.addAction(self.answer_now)
        loops = self.addMenu("&Loop detection")
        self.loop_group = QActionGroup(self)
        self.loop_actions: dict[str, QAction] = {}
        chosen = saved_loop_detection()
        for mode, text in LOOP_MODES:
            action = QAction(text, self)
            action.setCheckable(True)
            action.setChecked(mode == chosen)
            action.setData(mode)
            action.triggered.connect(lambda _=False, m=mode: self.set_loop_detection(m))
            self.loop_group.addAction(action)
            loops.addAction(action)
            self.loop_actions[mode] = action

    @property
    def loop_detection(self) -> str:
        checked = self.loop_group.checkedAction()
        return str(checked.data()) if checked is not None else DEFAULT_LOOP_MODE

    def set_loop_detection(self, mode: str) -> None:
        self.loop_actions[mode].setChecked(True)
        QSettings().setValue(LOOP_SETTING, mode)
