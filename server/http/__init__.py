"""The QIDO-RS endpoint: ``GET /dicom-web/{upstream}/studies`` ... on ``--http-listen``.

    request    a URL as the SearchRequest it asks for (or NotFound, InvalidArgument)
    reply      an answer with its cache headers, an error as a status and a JSON body
    endpoint   the WSGI application: authenticate, parse, authorize, search, reply
    tls        HTTPS with the gRPC port's certificate files, re-read when they change
    listener   the cheroot server that serves it, in threads beside the gRPC server

Existing DICOMweb clients pointed at ``http://HOST:PORT/dicom-web/{upstream}`` get
the cache with no code: the answers are the archive's own DICOM JSON, from the
same engine and entries as the ``Search`` RPC.
"""
