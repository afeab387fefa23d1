"""The wire contract's rules that the ``.proto`` comments state, defined once for Python.

The comments in ``dicomcache/v1/*.proto`` are the contract every language reads.
Where they state a rule that both sides apply, the Python client and the server
take it from here instead of each spelling it out, so the two cannot drift apart:

* ``NAMESPACE``, ``NAMESPACE_RULE``: ``CacheService`` says "Namespaces are 1 to 128
  characters of letters, digits and "._:/-"". The server rejects any other
  namespace as INVALID_ARGUMENT with ``NAMESPACE_RULE`` as the violation's
  description; the client refuses it before it makes a call.
* ``DEFAULT_KIND``: ``Query.kind`` says ""dicomtrolley.core.Query" (the default when
  empty)". The server spells an empty kind out before computing the cache key;
  the client reads an empty kind as this class.
* ``MAX_MESSAGE_BYTES``, ``MAX_ANSWER_BYTES``: ``CacheService`` says "No message, in
  or out, is larger than the server's largest message (--max-message-bytes, 4 MiB
  by default ...)" and "No answer ... is larger than the server's largest answer
  (--max-answer-bytes, 64 MiB by default ...)". The server's flags and the client's
  ``max_message_bytes`` and ``max_answer_bytes`` default to them, so that out of
  the box the client sends no message the server refuses and can receive every
  answer the server keeps.

Changing a value here changes the contract: change the ``.proto`` comment with it.
"""

from __future__ import annotations

import re
from typing import Final

NAMESPACE: Final = re.compile(r"[A-Za-z0-9._:/-]{1,128}")
"""What a namespace may be (``fullmatch``)."""

NAMESPACE_RULE: Final = "must be 1 to 128 characters of letters, digits and ._:/-"
"""``NAMESPACE`` in words, as a violation's description."""

DEFAULT_KIND: Final = "dicomtrolley.core.Query"
"""The kind that an empty ``Query.kind`` stands for."""

MAX_MESSAGE_BYTES: Final = 4 * 1024**2
"""The default largest message of the server and the client: gRPC's own default receive
limit, and about 4 ms of a process's time to take in or copy out as one piece."""

MAX_ANSWER_BYTES: Final = 64 * 1024**2
"""The default largest answer (streamed in pieces) of the server and the client."""
