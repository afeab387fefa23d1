"""Namespace labels for metrics, bounded in number.

Every distinct label value is a time series that Prometheus keeps; namespaces are
few (one per archive, or per archive and user), but nothing stops a client from
using thousands. The first ``cap`` namespace groups seen get a label of their own,
every later one is counted under ``OTHER``, so a scrape stays the same size
whatever the clients do.
"""

from __future__ import annotations

import threading

from dicomcache.server.backends import group

OTHER = "_other"  # not a valid namespace name (the contract's rule starts with [A-Za-z0-9])
DEFAULT_CAP = 100


class NamespaceLabels:
    """The label of each namespace group: its own name for the first ``cap``, then OTHER.

    Thread-safe. Reads no clock.
    """

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def __call__(self, namespace: str) -> str:
        """The label for ``namespace`` (a partition ``name@protocol`` counts as ``name``)."""
        name = group(namespace)
        label = self._known.get(name)
        if label is not None:
            return label
        with self._lock:
            if name not in self._known and len(self._known) < self.cap:
                self._known[name] = name
            return self._known.get(name, OTHER)
