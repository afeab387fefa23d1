"""Study trees with their instances' attributes packed before the backend's lock, unpacked after.

zlib lets go of the interpreter lock on every call (see ``compression``); inside the
backend's lock that would hold every other request up until the interpreter lock
comes back. So a write packs its instances before it takes the lock, against the
dictionaries its studies have (read under the lock just before) or will have; and a
hit takes its objects out packed and unpacks them, in one call, once it has let go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from dicomcache.server.backends.memory import compression
from dicomcache.server.model import CachedObject, InstanceData, SeriesData, StudyData
from dicomcache.server.pacing import step


def first_dictionary(study: StudyData) -> bytes | None:
    """The dictionary the study's first instance with attributes would give, if any."""
    for series in study.series:
        for instance in series.instances:
            if instance.attributes is not None:
                return compression.dictionary(instance.attributes)
    return None


def pack_study(study: StudyData, dictionary: bytes | None) -> StudyData:
    """The study with its instances' attributes packed against ``dictionary``."""
    if not any(s.instances for s in study.series):
        return study

    def pack(data: bytes) -> bytes:
        step()
        return compression.pack(data, dictionary)

    return _map_instances(study, pack)


def unpack_studies(
    studies: list[StudyData], dictionaries: Sequence[bytes | None]
) -> list[StudyData]:
    """The studies (each with its dictionary) with their instances' attributes unpacked.

    In calls into zlib of at most ``UNPACK_BYTES`` of output each: one call for a
    300,000-instance hit would end in one copy of half a gigabyte, holding the
    interpreter lock. The (blob, dictionary) pairs are made a batch at a time: a list
    of all of them was freed in one deallocation of 300,000 tuples, about 15 ms
    holding the interpreter lock (issue 11, stall row S2).
    """
    if not any(compression.packed(blob) for blob, _ in _blobs(studies, dictionaries)):
        return studies
    batches = _batches(_blobs(studies, dictionaries))
    data = iter([d for batch in batches for d in compression.unpack_all(batch)])

    def unpacked(_: bytes) -> bytes:
        step()
        return next(data)

    return [_map_instances(study, unpacked) for study in studies]


def _blobs(
    studies: list[StudyData], dictionaries: Sequence[bytes | None]
) -> Iterator[tuple[bytes, bytes | None]]:
    """Each instance's attributes with its study's dictionary, in order (None skipped)."""
    for study, dictionary in zip(studies, dictionaries, strict=True):
        for s in study.series:
            for i in s.instances:
                if i.attributes is not None:
                    yield i.attributes, dictionary


# The most output of one call into zlib when unpacking (each blob's data and its
# dictionary, which the stream carries before it): about a millisecond of work.
UNPACK_BYTES = 1024 * 1024


def _batches(
    blobs: Iterable[tuple[bytes, bytes | None]],
) -> Iterator[list[tuple[bytes, bytes | None]]]:
    """The blobs in runs whose unpacked output stays within ``UNPACK_BYTES`` (or one blob)."""
    batch: list[tuple[bytes, bytes | None]] = []
    size = 0
    for pair in blobs:
        blob, dictionary = pair
        grows = len(blob) if not compression.packed(blob) else blob[1] | blob[2] << 8
        grows += len(dictionary or b"")
        if size and size + grows > UNPACK_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(pair)
        size += grows
    yield batch


def unpack_object(obj: CachedObject, dictionary: bytes | None) -> CachedObject:
    """The object (with its study's dictionary) with its instances' attributes unpacked."""
    if isinstance(obj, StudyData):
        return unpack_studies([obj], [dictionary])[0]
    if isinstance(obj, SeriesData):
        return unpack_studies([StudyData("", None, (obj,))], [dictionary])[0].series[0]
    if not compression.packed(obj.attributes):
        return obj
    assert obj.attributes is not None  # packed
    return InstanceData(obj.uid, compression.unpack(obj.attributes, dictionary))


def _map_instances(study: StudyData, change: Callable[[bytes], bytes]) -> StudyData:
    """The study with ``change`` applied to each instance's attributes (None stays None)."""
    return StudyData(
        study.uid,
        study.attributes,
        tuple(
            SeriesData(
                s.uid,
                s.attributes,
                tuple(
                    InstanceData(i.uid, None if i.attributes is None else change(i.attributes))
                    for i in s.instances
                ),
            )
            for s in study.series
        ),
    )
