"""The read-through of ``Search``: a QIDO-RS search in, the archive's DICOM JSON out.

request   a SearchRequest as the ArchiveRequest its archive receives (the cache key)
answer    DICOM JSON objects as the study trees the backends keep, the archive's
          order kept beside them, and back
flights   single flight: concurrent identical misses of one server ask the archive once
engine    SearchEngine: normalize, look up, else fetch once, store, answer
"""
