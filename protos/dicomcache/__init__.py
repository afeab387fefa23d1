"""dicomcache: a gRPC cache for DICOM query answers."""
