"""The read-through of ``Search``: a QIDO-RS search in, the archive's DICOM JSON out.

request        a SearchRequest as the ArchiveRequest its archive receives (the cache key)
answer         DICOM JSON objects as the study trees the backends keep, the archive's
               order kept beside them, and back
rendered       stored objects' JSON texts, kept by their bytes, so a hit converts nothing
flights        single flight: concurrent identical misses of one server ask the archive once
shared_flight  the same across the servers that share a backend (Redis)
engine         SearchEngine: normalize, look up, else fetch once, store, answer
"""
