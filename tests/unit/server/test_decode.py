"""The write path's conversion to the model is paced, an object at a time."""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from dicomcache.server.api import decode
from tests.support.messages import make_study


def test_each_object_converted_is_a_step_of_its_call(monkeypatch: Any) -> None:
    """Converting a study serializes each object's attributes again (about 5 us each):
    an AddObjects of 1,700 objects held the interpreter lock 8 ms between two steps,
    a unary StoreStudy at the 4 MiB limit about 20 (issue 11). Now no two objects'
    serializations run without a step between them."""
    study = make_study(1, 3, 40)
    events: list[str] = []
    monkeypatch.setattr(decode, "step", lambda: events.append("step"), raising=False)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") == "SerializeToString":
            events.append("serialize")

    sys.setprofile(profile)
    try:
        converted = decode.study_from_proto(study)
    finally:
        sys.setprofile(None)
    assert [len(s.instances) for s in converted.series] == [40, 40, 40]
    assert events.count("serialize") == 1 + 3 + 3 * 40  # every object has attributes
    assert events.count("step") == 3 + 3 * 40
    assert "serialize serialize" not in " ".join(events)
    assert converted.series[1].instances[7].uid == study.series[1].instances[7].uid
    assert converted.series[1].instances[7].attributes == (
        study.series[1].instances[7].attributes.SerializeToString()
    )
