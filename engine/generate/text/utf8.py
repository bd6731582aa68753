"""UTF-8 safe detokenization: bytes in, text out, a character split across tokens held until complete,
so joining every piece gives the same text as decoding it whole."""

from __future__ import annotations

import codecs


class Utf8Stream:
    """Bytes in, text out; a character split across tokens is emitted once it is complete."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, data: bytes) -> str:
        return self._decoder.decode(data)

    def finish(self) -> str:
        return self._decoder.decode(b"", final=True)
