"""Generated code of the wire contract, package dicomcache.v1."""
