"""Builders of wire messages for tests: studies with real-looking datasets."""

from __future__ import annotations

from dicomcache.v1 import dataset_pb2, objects_pb2

STUDY_UID_ROOT = "1.2.826.0.1.3680043.8.498"


def text_element(vr: str, *values: str) -> dataset_pb2.Element:
    """An element holding text values."""
    return dataset_pb2.Element(
        vr=vr, values=dataset_pb2.Values(items=[dataset_pb2.Value(text=v) for v in values])
    )


def dataset(**elements: dataset_pb2.Element) -> dataset_pb2.Dataset:
    """A Dataset from tag-name keyword arguments such as t0020000D=..."""
    return dataset_pb2.Dataset(elements={int(k[1:], 16): v for k, v in elements.items()})


def make_study(
    n: int = 1, n_series: int = 0, n_instances: int = 0, patient: str = "Doe^Jane"
) -> objects_pb2.Study:
    """Study number n with n_series series of n_instances instances each."""
    study_uid = f"{STUDY_UID_ROOT}.{n}"
    study = objects_pb2.Study(
        uid=study_uid,
        attributes=dataset(
            t0020000D=text_element("UI", study_uid),
            t00100010=dataset_pb2.Element(
                vr="PN",
                values=dataset_pb2.Values(
                    items=[
                        dataset_pb2.Value(person_name=dataset_pb2.PersonName(alphabetic=patient))
                    ]
                ),
            ),
            t00100020=text_element("LO", f"PAT{n}"),
        ),
    )
    for s in range(1, n_series + 1):
        series_uid = f"{study_uid}.{s}"
        series = study.series.add(
            uid=series_uid,
            attributes=dataset(
                t0020000E=text_element("UI", series_uid), t00080060=text_element("CS", "CT")
            ),
        )
        for i in range(1, n_instances + 1):
            instance_uid = f"{series_uid}.{i}"
            series.instances.add(
                uid=instance_uid, attributes=dataset(t00080018=text_element("UI", instance_uid))
            )
    return study
