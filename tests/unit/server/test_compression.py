"""Packing of instances' attributes: exact round trips, and a study's dictionary that never moves.

The first part checks ``compression`` alone; the rest checks the memory backend
serving packed data exactly as it was written, whatever happens to the object the
study's dictionary came from or to a write racing for it, and counting (and
freeing) packed bytes.
"""

from __future__ import annotations

import random
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.compression import (
    MAX_DICTIONARY,
    MAX_PACKED,
    MIN_DICTIONARY,
    MIN_PACKED,
    dictionary,
    pack,
    packed,
    unpack,
    unpack_all,
)
from dicomcache.server.backends.memory.namespace import NAMESPACE_OVERHEAD, Namespace
from dicomcache.server.backends.memory.packing import pack_study, unpack_object, unpack_studies
from dicomcache.server.backends.memory.tree import NODE_OVERHEAD, find, snapshot
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from dicomcache.v1 import dataset_pb2
from tests.support.clock import FakeClock
from tests.unit.server.test_memory_model import MemoryBackendMachine

URL = "http://127.0.0.1:8042/dicom-web"


def dataset(study: str, series: str, sop: str, version: int = 0) -> bytes:
    """A serialized Dataset shaped like an Orthanc QIDO-RS instance answer (~600 bytes)."""
    texts = {
        0x00080005: ("CS", "ISO_IR 100"),
        0x00080018: ("UI", sop),
        0x00080016: ("UI", "1.2.840.10008.5.1.4.1.1.4"),
        0x00080020: ("DA", "20240131"),
        0x00080050: ("SH", f"ACC{version:09d}"),
        0x00080060: ("CS", "MR"),
        0x00080056: ("CS", "ONLINE"),
        0x00100020: ("LO", "PAT00000042"),
        0x00100030: ("DA", "19700101"),
        0x0020000D: ("UI", study),
        0x0020000E: ("UI", series),
        0x00081190: ("UR", f"{URL}/studies/{study}/series/{series}/instances/{sop}"),
    }
    ds = dataset_pb2.Dataset()
    for tag, (vr, text) in texts.items():
        ds.elements[tag].vr = vr
        ds.elements[tag].values.items.add(text=text)
    ds.elements[0x00100010].vr = "PN"
    ds.elements[0x00100010].values.items.add().person_name.alphabetic = "Doe^Jane"
    return ds.SerializeToString()


def study_of(uid: str, n_series: int, n_instances: int, version: int = 0) -> StudyData:
    """A study whose every object carries a realistic dataset."""
    series = []
    for s in range(1, n_series + 1):
        s_uid = f"{uid}.{s}"
        instances = tuple(
            InstanceData(f"{s_uid}.{i}", dataset(uid, s_uid, f"{s_uid}.{i}", version))
            for i in range(1, n_instances + 1)
        )
        series.append(SeriesData(s_uid, dataset(uid, s_uid, "", version), instances))
    return StudyData(uid, dataset(uid, "", "", version), tuple(series))


def noise(n: int, seed: int = 0) -> bytes:
    """Bytes that do not compress."""
    return random.Random(seed).randbytes(n)


# -- compression alone -----------------------------------------------------------------

SIBLING = dataset("1.2.3", "1.2.3.1", "1.2.3.1.1")
INSTANCE = dataset("1.2.3", "1.2.3.1", "1.2.3.1.2")

EDGE_CASES = [
    b"",
    b"a",
    b"\xfd",
    b"\xfe",
    b"\xff",
    b"\xff" * 100,  # a marker byte first, and compressible
    b"\xfd" + noise(100),  # a marker byte first, and not compressible
    b"x" * (MIN_PACKED - 1),
    b"x" * MIN_PACKED,
    b"x" * MAX_PACKED,
    b"x" * (MAX_PACKED + 1),
    b"\xff" + b"x" * MAX_PACKED,
    noise(1000),
    noise(100_000),
    INSTANCE,
    SIBLING,
]


@pytest.mark.parametrize("data", EDGE_CASES, ids=range(len(EDGE_CASES)))
@pytest.mark.parametrize(
    "dictionary", [None, SIBLING, noise(500)], ids=["none", "sibling", "noise"]
)
def test_what_is_packed_unpacks_to_the_same_bytes(data: bytes, dictionary: bytes | None) -> None:
    assert unpack(pack(data, dictionary), dictionary) == data


@settings(max_examples=300)
@given(
    data=st.binary(max_size=2 * MAX_PACKED),
    dictionary=st.none() | st.binary(max_size=MAX_DICTIONARY),
)
def test_any_bytes_round_trip(data: bytes, dictionary: bytes | None) -> None:
    assert unpack(pack(data, dictionary), dictionary) == data


@settings(max_examples=200)
@given(
    items=st.lists(
        st.tuples(
            st.binary(max_size=300) | st.sampled_from(EDGE_CASES),
            st.none() | st.binary(max_size=MAX_DICTIONARY) | st.sampled_from([SIBLING]),
        ),
        max_size=12,
    )
)
def test_blobs_unpacked_together_are_each_their_own_data(
    items: list[tuple[bytes, bytes | None]],
) -> None:
    blobs = [(pack(data, d), d) for data, d in items]
    assert unpack_all(blobs) == [data for data, _ in items]


def test_many_siblings_unpack_together_against_two_dictionaries() -> None:
    other = dataset("1.9", "1.9.1", "1.9.1.1")
    items = [
        (dataset("1.2.3", "1.2.3.1", f"1.2.3.1.{n}", n), SIBLING if n % 2 else other)
        for n in range(80)
    ]
    blobs = [(pack(data, d), d) for data, d in items]
    assert all(packed(blob) for blob, _ in blobs)
    assert unpack_all(blobs) == [data for data, _ in items]


@given(prefix=st.binary(max_size=200), repeat=st.integers(1, 50))
def test_repetitive_data_round_trips_and_never_grows_by_more_than_a_byte(
    prefix: bytes, repeat: int
) -> None:
    data = prefix * repeat
    blob = pack(data, SIBLING)
    assert unpack(blob, SIBLING) == data
    assert len(blob) <= len(data) + 1


def test_data_that_does_not_shrink_is_kept_as_given_without_a_copy() -> None:
    data = b"\x0a" + noise(700)
    assert pack(data, SIBLING) is data
    assert pack(INSTANCE, None) is INSTANCE  # no dictionary: kept as given
    tiny = b"\x0a\x02ab"
    assert pack(tiny, SIBLING) is tiny


def test_data_starting_with_a_marker_byte_gets_one_byte_more() -> None:
    data = b"\xfe" + noise(700)
    assert pack(data, SIBLING) == b"\xfd" + data
    assert not packed(pack(data, SIBLING))


def test_large_data_is_kept_as_given() -> None:
    data = b"\x0a" * (MAX_PACKED + 1)  # compresses to almost nothing, yet is not packed
    assert pack(data, SIBLING) is data


def test_an_instance_packs_far_smaller_against_a_sibling() -> None:
    blob = pack(INSTANCE, SIBLING)
    assert packed(blob)
    assert len(blob) * 5 < len(INSTANCE)


def test_a_blob_packed_with_a_dictionary_needs_it() -> None:
    blob = pack(INSTANCE, SIBLING)
    with pytest.raises(ValueError):
        unpack(blob, None)
    with pytest.raises(ValueError):
        unpack_all([(blob, None)])


def test_a_truncated_blob_is_an_error_not_a_shorter_answer() -> None:
    blob = pack(INSTANCE, SIBLING)
    with pytest.raises(zlib.error):
        unpack(blob[: len(blob) // 2], SIBLING)
    with pytest.raises(zlib.error):
        unpack_all([(pack(SIBLING, SIBLING), SIBLING), (blob[:-3], SIBLING)])


def test_a_dictionary_too_long_to_be_held_is_refused() -> None:
    with pytest.raises(ValueError):
        pack(INSTANCE, noise(MAX_DICTIONARY + 1))


def test_a_dictionary_is_the_head_of_long_enough_data() -> None:
    assert dictionary(b"x" * (MIN_DICTIONARY - 1)) is None
    assert dictionary(SIBLING) is SIBLING
    assert dictionary(noise(MAX_DICTIONARY + 10)) == noise(MAX_DICTIONARY + 10)[:MAX_DICTIONARY]


# -- in the memory backend -------------------------------------------------------------


def test_blobs_stay_readable_whatever_happens_to_the_dictionary_source() -> None:
    """The first instance gives the study its dictionary; rewriting it, its series and
    its study, or dropping it, must not change how the other instances read."""
    backend = MemoryBackend(clock=FakeClock())
    original = study_of("1.2", 2, 5)
    backend.store_study("ns", original, Level.INSTANCE, None)
    source = original.series[0].instances[0]
    assert backend.get_object("ns", ("1.2", "1.2.1", source.uid)) == source

    rewritten = StudyData(
        "1.2",
        dataset("9.9", "", "", 7),
        (
            SeriesData(
                "1.2.1",
                dataset("9.9", "9.9.1", "", 7),
                (InstanceData(source.uid, dataset("9.9", "9.9.1", "9.9.1.1", 7)),),
            ),
        ),
    )
    backend.add_objects("ns", [rewritten], None)
    expected = StudyData(
        "1.2",
        rewritten.attributes,
        (
            SeriesData(
                "1.2.1",
                rewritten.series[0].attributes,
                (rewritten.series[0].instances[0], *original.series[0].instances[1:]),
            ),
            original.series[1],
        ),
    )
    # The listing returned the old attributes, so it is dead (issue 10); the objects read.
    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) is None
    assert backend.get_object("ns", ("1.2",)) == expected

    backend.invalidate("ns", ("1.2", "1.2.1", source.uid))
    later = InstanceData("1.2.1.9", dataset("8.8", "8.8.1", "8.8.1.9", 3))
    backend.add_objects(
        "ns", [StudyData("1.2", None, (SeriesData("1.2.1", None, (later,)),))], None
    )

    series = backend.get_object("ns", ("1.2", "1.2.1"))
    assert isinstance(series, SeriesData)
    assert sorted(series.instances, key=lambda i: i.uid) == sorted(
        (*original.series[0].instances[1:], later), key=lambda i: i.uid
    )
    assert backend.get_object("ns", ("1.2", "1.2.2")) == original.series[1]


def test_query_answers_and_listings_serve_the_data_as_written() -> None:
    backend = MemoryBackend(clock=FakeClock())
    studies = [study_of("1.2", 3, 4), study_of("1.3", 1, 2)]
    backend.store_query("ns", b"key", studies, None)
    backend.store_study("ns", studies[0], Level.INSTANCE, None)

    assert backend.lookup_query("ns", b"key") == studies
    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) == studies[0]
    series_level = backend.lookup_study("ns", "1.2", Level.SERIES)
    assert series_level == StudyData(
        "1.2",
        studies[0].attributes,
        tuple(SeriesData(s.uid, s.attributes) for s in studies[0].series),
    )
    assert backend.lookup_study("ns", "1.2", Level.STUDY) == StudyData("1.2", studies[0].attributes)


def test_packed_bytes_and_the_dictionary_are_counted_and_freed() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    study = study_of("1.2", 4, 20)
    instances = [i for s in study.series for i in s.instances]
    nodes = sum(NODE_OVERHEAD + len(o.uid) for o in (study, *study.series, *instances))
    as_given = sum(len(o.attributes or b"") for o in (study, *study.series))
    raw = sum(len(i.attributes or b"") for i in instances)
    backend.add_objects("ns", [study], None)
    namespace = NAMESPACE_OVERHEAD + len("ns")  # the namespace's own bytes, counted too
    one = backend.stats("ns").total_bytes - namespace
    backend.add_objects("ns", [study_of("1.3", 4, 20)], None)
    both = backend.stats("ns").total_bytes - namespace

    assert one - nodes - as_given < raw / 5  # the dictionary included
    backend.invalidate("ns", ("1.2",))
    assert backend.stats("ns").total_bytes == namespace + both - one
    clock.advance(601)
    assert backend.expire(1000) > 0
    assert backend.stats("ns").total_bytes == 0


def test_the_dictionary_counts_as_long_as_its_study_lives() -> None:
    """A lone instance packs to a few bytes against itself: its dictionary holds the rest."""
    backend = MemoryBackend(clock=FakeClock())
    instance = InstanceData("1.2.1.1", INSTANCE)
    path = StudyData("1.2", None, (SeriesData("1.2.1", None, (instance,)),))
    nodes = sum(NODE_OVERHEAD + len(uid) for uid in ("1.2", "1.2.1", "1.2.1.1"))
    backend.add_objects("ns", [path], None)

    assert backend.stats("ns").total_bytes >= nodes + len(INSTANCE)
    backend.invalidate("ns", ("1.2", "1.2.1", "1.2.1.1"))
    assert backend.stats("ns").total_bytes == 0


def test_a_write_packed_against_a_dictionary_the_study_did_not_take_reads_right() -> None:
    """Two writes pack before the lock, each with its own study's first instance: the
    study takes the first one's, and the second's instances are kept as given."""
    ns = Namespace("ns")
    first, second = study_of("1.2", 1, 3, version=1), study_of("1.2", 1, 4, version=2)
    first_dictionary = dictionary(first.series[0].instances[0].attributes or b"")
    second_dictionary = dictionary(second.series[0].instances[0].attributes or b"")
    ns.write(pack_study(first, first_dictionary), 100.0, [], first_dictionary)
    ns.write(pack_study(second, second_dictionary), 100.0, [], second_dictionary)

    node = find(ns, ("1.2",))
    assert node is not None and node.dictionary is first_dictionary
    found = snapshot(node, 1, 0.0)
    assert found is not None
    assert unpack_object(found, ns.dictionary_of("1.2")) == second


def test_answers_without_packed_instances_are_not_rebuilt() -> None:
    studies = [study_of("1.2", 2, 0), StudyData("1.3", b"\xff\xff")]
    assert unpack_studies(studies, [SIBLING, None]) is studies


# -- the plain-dict model, with data large enough to be packed ------------------------


class PackedMachine(MemoryBackendMachine):
    """The model test of ``test_memory_model`` with datasets that pack, against dictionaries."""

    def stamp(self, given: list[StudyData], ttl: float | None) -> tuple[list[StudyData], int]:
        stamped, count = super().stamp(given, ttl)
        return [widen_study(s) for s in stamped], count


def widen(uid: str, data: bytes | None) -> bytes | None:
    """Data that names its object and write, inside a dataset like its siblings'."""
    if data is None:
        return None
    return dataset(uid, uid, data.decode(), len(data))


def widen_study(study: StudyData) -> StudyData:
    return StudyData(
        study.uid,
        widen(study.uid, study.attributes),
        tuple(
            SeriesData(
                s.uid,
                widen(s.uid, s.attributes),
                tuple(InstanceData(i.uid, widen(i.uid, i.attributes)) for i in s.instances),
            )
            for s in study.series
        ),
    )


PackedMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_packed_backend_matches_the_model = PackedMachine.TestCase
