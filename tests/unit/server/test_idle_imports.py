"""An idle server imports only what it uses: not the client's dicomtrolley side, not pydicom.

Each check runs in a fresh interpreter, since this one has imported everything.
``server/search`` reads the client's pure conversions (``client/convert/dicom_json.py``),
and the client package once imported all of itself with them (dicomtrolley, its HTTP
stack, pydicom, numpy); ``search/request.py`` read pydicom's dictionary at import,
though only a server with upstreams normalizes a search.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What an idle server (memory backend, no upstreams) has no use for.
UNUSED = (
    "dicomtrolley",
    "pydicom",
    "numpy",
    "requests",
    "pynetdicom",
    "dicomcache.client.cache_client",
    "dicomcache.client.searcher",
)

SERVE = """
import json, sys
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings

server = CacheServer(Settings(listen="127.0.0.1:0", upstream={upstreams!r})).start()
try:
    print(json.dumps(sorted(name for name in {unused!r} if name in sys.modules)))
finally:
    server.stop(0)
"""


def loaded(upstreams: list[str]) -> list[str]:
    """Which of UNUSED a started CacheServer (memory backend) has imported."""
    code = SERVE.format(upstreams=upstreams, unused=UNUSED)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    names: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return names


def test_an_idle_server_imports_neither_dicomtrolley_nor_pydicom() -> None:
    assert loaded([]) == []


def test_a_server_with_an_upstream_loads_pydicom_s_dictionary_when_built() -> None:
    """Search normalizes attribute names with it: loaded at start, not at the first search.

    Building a QIDO-RS upstream connects to nothing, so the port may be closed.
    """
    names = loaded(["pacs=http://127.0.0.1:9/dicom-web"])
    assert "pydicom" in names
    # pydicom brings numpy and requests; the client's dicomtrolley side stays out.
    assert not {"dicomtrolley", "dicomcache.client.cache_client"} & set(names)
