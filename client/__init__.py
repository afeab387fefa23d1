"""The dicomcache client: generated stubs, conversions and the cached dicomtrolley Searcher."""
