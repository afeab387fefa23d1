"""Builders of study trees for tests: deterministic uids and attributes that name their object."""

from __future__ import annotations

from collections.abc import Sequence

from dicomcache.server.model import InstanceData, SeriesData, StudyData


def attrs(uid: str, version: int = 0, size: int = 0) -> bytes:
    """Attributes that say which object (and which write) they belong to, padded to ``size``."""
    data = f"{uid}#{version}".encode()
    return data.ljust(size, b".")


def make_study(
    uid: str,
    n_series: int = 0,
    n_instances: int = 0,
    *,
    version: int = 0,
    size: int = 0,
    paths: bool = False,
) -> StudyData:
    """A study with ``n_series`` series of ``n_instances`` instances each.

    Child uids extend the parent's (``1.2`` -> ``1.2.1`` -> ``1.2.1.1``). With
    ``paths`` the study and series come without attributes (only the instances
    are written).
    """
    series = tuple(
        make_series(f"{uid}.{i}", n_instances, version=version, size=size, path=paths)
        for i in range(1, n_series + 1)
    )
    return StudyData(uid, None if paths else attrs(uid, version, size), series)


def make_series(
    uid: str, n_instances: int = 0, *, version: int = 0, size: int = 0, path: bool = False
) -> SeriesData:
    """A series with ``n_instances`` instances."""
    instances = tuple(
        InstanceData(f"{uid}.{j}", attrs(f"{uid}.{j}", version, size))
        for j in range(1, n_instances + 1)
    )
    return SeriesData(uid, None if path else attrs(uid, version, size), instances)


def study_only(study: StudyData) -> StudyData:
    """The study without its series."""
    return StudyData(study.uid, study.attributes)


def series_only(study: StudyData) -> StudyData:
    """The study with its series but no instances."""
    return StudyData(
        study.uid, study.attributes, tuple(SeriesData(s.uid, s.attributes) for s in study.series)
    )


def path_to(study: StudyData, series: SeriesData) -> StudyData:
    """A path-only study holding one series as given."""
    return StudyData(study.uid, None, (series,))


def canonical(studies: Sequence[StudyData] | None) -> list[StudyData] | None:
    """The studies with every level sorted by uid, to compare answers whatever their order."""
    if studies is None:
        return None
    return sorted((canonical_study(s) for s in studies), key=lambda s: s.uid)


def canonical_study(study: StudyData) -> StudyData:
    """The study with its series and instances sorted by uid."""
    series = sorted(
        (
            SeriesData(s.uid, s.attributes, tuple(sorted(s.instances, key=lambda i: i.uid)))
            for s in study.series
        ),
        key=lambda s: s.uid,
    )
    return StudyData(study.uid, study.attributes, tuple(series))
