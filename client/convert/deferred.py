"""A hit's datasets are kept as wire bytes and built into pydicom elements on first use.

Built eagerly, a 10,000-instance hit is 180,000 pydicom elements: about 55
tracked objects per instance, which the cyclic garbage collector walks again and
again while they are made (two thirds of the time of such a hit, measured with
``benchmarks/rows/large_study.py``). Most callers of such a hit read a few
attributes of a few objects, or only the uids, which dicomtrolley keeps outside
the dataset. So each object's dataset is a ``DeferredDataset`` holding the
serialized proto Dataset (one bytes object, which the collector never walks),
and the first read of any of its elements builds them all with ``to_pydicom``,
exactly as an eager hit would have. From then on it is a plain pydicom
``Dataset``: its class is switched to ``Dataset``, so ``type(ds) is Dataset``
and it costs nothing more to use.

What is the same as an eager build: every element, value and attribute (built by
the same ``to_pydicom``), equality, iteration, keyword access, writes, ``copy``,
``deepcopy`` and pickling (each builds the elements first, and copies and
pickles are plain Datasets). What differs:

- pydicom's reading settings (``config.settings.reading_validation_mode``,
  ``config.datetime_conversion``) apply as they are at the first read, not at
  the hit, as they do for pydicom's own raw elements read from a file.
- A value pydicom cannot hold raises ``ValueError`` at the first read instead of
  at the hit. The server accepts only known VRs, and a value that fails here
  fails ``Dataset.from_json`` of the archive's own answer alike.
- Before the first read, ``vars(ds)`` shows the wire bytes instead of ``_dict``,
  and ``type(ds)`` is this subclass.

Each unread dataset holds only its own bytes (about 0.8 KB for a QIDO-RS
instance), never the whole answer it came in.

Thread-safe: two threads reading an unbuilt dataset at once may both build it;
the first result stored is the one both use, and writes made through it are kept.
No clock.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from dicomcache.client.convert.constructors import DATASET_ATTRIBUTES
from dicomcache.client.convert.constructors import dataset as new_dataset
from dicomcache.client.convert.dataset import to_pydicom
from dicomcache.v1 import dataset_pb2

Elements = MutableMapping[BaseTag, DataElement | RawDataElement]  # a Dataset's _dict

_WIRE = "_dicomcache_wire"  # the instance attribute that holds the bytes until the build
_set = object.__setattr__  # Dataset overrides __setattr__; go around it
_new = object.__new__


def _template() -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """An unbuilt dataset's state without its wire, and the names to copy, if plain data."""
    if DATASET_ATTRIBUTES is None:
        return None
    attributes, fresh = DATASET_ATTRIBUTES
    state = {name: value for name, value in attributes.items() if name != "_dict"}
    return state, tuple(name for name in fresh if name != "_dict")


_TEMPLATE = _template()


class DeferredDataset(Dataset):
    """A pydicom Dataset whose elements are built from its wire bytes when first read.

    Made by ``deferred_dataset``, never by its constructor. Every route into a
    Dataset's elements goes through ``_dict``, which builds them and turns the
    object into a plain ``Dataset``.
    """

    __slots__ = ()  # the layout of Dataset, so that its class can be switched to Dataset

    @property
    def _dict(self) -> Elements:
        return _built(self)

    @_dict.setter
    def _dict(self, elements: Elements) -> None:
        state = vars(self)
        state["_dict"] = elements
        state.pop(_WIRE, None)
        _set(self, "__class__", Dataset)

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Copies and pickles are of the built, plain Dataset."""
        _built(self)
        return self.__reduce_ex__(protocol)  # now Dataset's


def deferred_dataset(wire: bytes) -> Dataset:
    """A Dataset that builds its elements from ``wire`` (a serialized proto Dataset) when read."""
    if _TEMPLATE is not None:  # the state the lines below give, in one step
        template, fresh = _TEMPLATE
        state = template.copy()
        for name in fresh:
            state[name] = state[name].copy()
        state[_WIRE] = wire
        made: Dataset = _new(DeferredDataset)
        _set(made, "__dict__", state)
        return made
    dataset = new_dataset()
    state = vars(dataset)
    del state["_dict"]
    state[_WIRE] = wire
    _set(dataset, "__class__", DeferredDataset)
    return dataset


def _built(dataset: Dataset) -> Elements:
    """The dataset's elements, built now if they were not yet."""
    state = vars(dataset)
    elements: Elements | None = state.get("_dict")
    if elements is not None:
        return elements
    wire = state.get(_WIRE)
    if wire is None:  # another thread built it since the line above
        built_elements: Elements = state["_dict"]
        return built_elements
    try:
        built = to_pydicom(dataset_pb2.Dataset.FromString(wire))
    except AttributeError as exc:
        # Dataset.__getattr__ would turn it into an empty dict: a silent empty dataset.
        raise ValueError(f"the cached dataset could not be built: {exc}") from exc
    for name, value in vars(built).items():
        if name != "_dict":
            state.setdefault(name, value)  # what the build added (such as _pixel_rep)
    elements = state.setdefault("_dict", built._dict)
    state.pop(_WIRE, None)
    _set(dataset, "__class__", Dataset)
    return elements
