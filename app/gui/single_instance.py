"""One app instance per data folder: a second start brings the first window forward.

The instance that owns the data folder's ChatStore (its OS lock, app/store.py) listens on a local
socket named after the folder (`server_name`); a second start finds the store in use and asks,
through that socket, for the window to come forward, then exits. When the first instance does not
answer (hung, or a process that holds the store without a window), the second opens read-only and
says so. A crashed first instance leaves no stale lock (the kernel drops it) and its socket file is
removed by the next owner before it listens.

Signals (InstanceServer):
    showRequested()   a second start asked for this window
"""

from __future__ import annotations

import getpass
import hashlib
import os
import time
from pathlib import Path

from app.gui.qt import QEventLoop, QLocalServer, QLocalSocket, QObject, QTimer, Signal

SHOW = b"show\n"
SHOWN = b"shown\n"
RETRY_MS = 100


def server_name(data_dir: Path) -> str:
    """A socket name for this user and data folder (short: Unix socket paths are limited to ~100 bytes)."""
    key = f"{getpass.getuser()}\0{os.path.realpath(data_dir)}"
    return "nemotron-desk-" + hashlib.sha256(key.encode()).hexdigest()[:24]


class InstanceServer(QObject):
    showRequested = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)  # this user only
        self._server.newConnection.connect(self._accept)

    def listen(self) -> bool:
        """Start answering; call only while holding the data folder's store lock (so no live owner is there,
        and a socket file left behind is a crashed instance's)."""
        QLocalServer.removeServer(self.name)
        return bool(self._server.listen(self.name))

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))
            socket.disconnected.connect(socket.deleteLater)

    def _read(self, socket: QLocalSocket) -> None:
        if bytes(socket.peek(len(SHOW)).data()) != SHOW:
            return  # wait for the whole request
        socket.readAll()
        self.showRequested.emit()
        socket.write(SHOWN)
        socket.flush()
        socket.disconnectFromServer()


def ask_first_instance(name: str, timeout_ms: int = 3000) -> bool:
    """Ask the instance listening on `name` to bring its window forward; True once it said it did.

    Retries while the socket is not there yet (the first instance may have just taken the lock), and
    runs a local event loop, not a blocking wait, so it also works inside the process of the first."""
    deadline = time.monotonic() + timeout_ms / 1000
    loop = QEventLoop()
    socket = QLocalSocket()
    reply = bytearray()

    def read() -> None:
        reply.extend(bytes(socket.readAll().data()))
        if SHOWN in reply:
            loop.quit()

    def failed(_error: QLocalSocket.LocalSocketError) -> None:
        if SHOWN in reply:
            return
        if time.monotonic() + RETRY_MS / 1000 < deadline:
            QTimer.singleShot(RETRY_MS, lambda: socket.connectToServer(name))
        else:
            loop.quit()

    socket.connected.connect(lambda: socket.write(SHOW))
    socket.readyRead.connect(read)
    socket.errorOccurred.connect(failed)
    QTimer.singleShot(timeout_ms, loop.quit)
    socket.connectToServer(name)
    loop.exec()
    socket.abort()
    return SHOWN in reply
