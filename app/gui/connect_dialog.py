"""ConnectDialog: point the app at a model on an OpenAI-compatible server (vLLM, SGLang, NIM, ...).

The person gives the server's URL and, if it needs one, an API key; "Test connection" lists the
server's models (its /v1/models) on a helper thread whose answer comes back through a Handoff, so the
window never waits on the network, and the person picks one. The URL and model are remembered in
QSettings; the key only in the system keyring (engine.services.secrets), and only when the person
asks for it to be remembered.
"""

from __future__ import annotations

from app.gui.handoff import Handoff
from app.gui.qt import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSettings,
    QVBoxLayout,
    QWidget,
)
from engine.api import RemoteSpec, secret_name
from engine.errors import EngineError, InvalidRequest
from engine.services.remote_servers import list_models
from engine.services.secrets import SecretStore, secrets

DEFAULT_URL = "http://127.0.0.1:8000/v1"


class ConnectDialog(QDialog):
    def __init__(self, parent: QWidget | None = None, store: SecretStore = secrets) -> None:
        super().__init__(parent)
        self.setWindowTitle("Connect to a server")
        self.store = store
        settings = QSettings()
        self.url = QLineEdit(str(settings.value("remote/url", DEFAULT_URL)), self)
        self.url.setPlaceholderText("http://gpu-box:8000/v1")
        self.key = QLineEdit(self)
        self.key.setEchoMode(QLineEdit.EchoMode.Password)
        self.key.setPlaceholderText("none")
        self.remember = QCheckBox(f"Remember the key in {store.where}", self)
        self.remember.setChecked(store.persistent)
        self.test = QPushButton("Test connection", self)
        self.models = QComboBox(self)
        self.models.setEnabled(False)
        self.message = QLabel("Test the connection to list the server's models.", self)
        self.message.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel,
                                        self)
        self._ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self._ok.setText("Connect")
        self._ok.setEnabled(False)
        self._layout()
        self._saved_model = str(settings.value("remote/model", ""))
        self._fill_saved_key()
        self.url.textEdited.connect(self._fill_saved_key)
        self.test.clicked.connect(self.test_connection)
        self.handoff = Handoff(self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

    def _layout(self) -> None:
        """The fields in a form; the message under them in a plain column, where a wrapped label gets
        the height of all its lines (a spanning QFormLayout row gave it one, drawn over the row above)."""
        form = QFormLayout()
        form.addRow("Server &URL", self.url)
        form.addRow("API &key", self.key)
        form.addRow(self.remember)
        row = QHBoxLayout()
        row.addWidget(self.test)
        row.addWidget(self.models, 1)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(row)
        layout.addWidget(self.message)
        layout.addStretch(1)
        layout.addWidget(self.buttons)

    def say(self, text: str) -> None:
        """Show `text` under the fields, all its lines: the dialog grows to fit them."""
        self.message.setText(text)
        self.message.setMinimumHeight(self.message.heightForWidth(max(self.message.width(), 1)))

    def _fill_saved_key(self) -> None:
        try:
            saved = self.store.get(secret_name(self.url.text()))
        except InvalidRequest:
            return
        if saved:
            self.key.setText(saved)

    def spec(self) -> RemoteSpec:
        """What the person chose; raises InvalidRequest for an address that is not one."""
        return RemoteSpec(self.url.text(), model=self.models.currentText(), api_key=self.key.text() or None)

    def test_connection(self) -> None:
        try:
            spec = self.spec()
        except InvalidRequest as exc:
            self.say(str(exc))
            return
        self.test.setEnabled(False)
        self._ok.setEnabled(False)
        self.say(f"Asking {spec.base_url} for its models…")
        self.handoff.run(lambda: list_models(spec), self._on_listed, "connect-test")

    def _on_listed(self, result: object) -> None:
        self.test.setEnabled(True)
        self.models.clear()
        if isinstance(result, EngineError):
            self.models.setEnabled(False)
            self.say(str(result))
            return
        if isinstance(result, Exception):
            self.models.setEnabled(False)
            raise result  # a bug, not the server: the crash handler reports it
        names = list(result) if isinstance(result, list) else []
        self.models.addItems(names)
        if self._saved_model in names:
            self.models.setCurrentText(self._saved_model)
        self.models.setEnabled(bool(names))
        self._ok.setEnabled(bool(names))
        self.say(f"The server offers {len(names)} model{'s' if len(names) != 1 else ''}; pick one."
                             if names else "The server lists no models: has it finished loading?")

    def accept(self) -> None:
        spec = self.spec()
        settings = QSettings()
        settings.setValue("remote/url", spec.base_url)
        settings.setValue("remote/model", spec.model)
        name = secret_name(spec.base_url)
        if spec.api_key and self.remember.isChecked():
            self.store.set(name, spec.api_key)
        elif not self.remember.isChecked():
            self.store.delete(name)
        super().accept()
