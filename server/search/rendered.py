"""The DICOM JSON text of stored objects, kept by their attributes' bytes.

A hit is rebuilt from the stored objects, and converting one object's Dataset back
to DICOM JSON text costs about 0.25 ms for a 22-attribute instance: 80 instances
made a hit 20 ms, nearly all of it conversion. The text is a function of the
bytes alone (``dicom_json.dataset_to_json``, then ``json.dumps`` as ``answer.text``
does), so a hit of a hot answer looks up one text per object instead; objects
shared by several answers (a series' instances in a study's listing) share it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict

from dicomcache.client.convert.dicom_json import dataset_to_json
from dicomcache.v1 import dataset_pb2

MAX_BYTES = 16 * 1024**2  # of texts kept, beyond the backend's own --max-memory
_OVERHEAD = 100  # bytes charged per text on top of its length and its key's


def render(data: bytes) -> str:
    """An object's DICOM JSON text from its stored attributes (no spaces, UTF-8 as is)."""
    message = dataset_pb2.Dataset.FromString(data)
    return json.dumps(dataset_to_json(message), ensure_ascii=False, separators=(",", ":"))


class Rendered:
    """Texts by attributes' bytes, the least recently used dropped past ``max_bytes``.

    Thread-safe (one lock; texts are made outside it). No clock.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._texts: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def text(self, data: bytes) -> str:
        """The object's text: kept, or rendered (then kept)."""
        with self._lock:
            found = self._texts.get(data)
            if found is not None:
                self._texts.move_to_end(data)
                return found
        made = render(data)
        cost = len(data) + len(made) + _OVERHEAD
        if cost > self.max_bytes:
            return made
        with self._lock:
            if data not in self._texts:
                self._texts[data] = made
                self.size += cost
                while self.size > self.max_bytes:
                    old, text = self._texts.popitem(last=False)
                    self.size -= len(old) + len(text) + _OVERHEAD
        return made

    def __len__(self) -> int:
        with self._lock:
            return len(self._texts)
