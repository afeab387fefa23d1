"""What the figures were measured on: printed with the table, stored with the JSON."""

from __future__ import annotations

import os
import platform
import sys
from importlib.metadata import version

import psutil


def describe() -> dict[str, str | int]:
    """Cores, memory, OS, Python and the versions of the libraries on the measured path."""
    return {
        "cores": os.cpu_count() or 0,
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3),
        "cpu": platform.processor() or platform.machine(),
        "os": platform.platform(terse=True),
        "python": sys.version.split()[0],
        "grpcio": version("grpcio"),
        "protobuf": version("protobuf"),
        "pydicom": version("pydicom"),
        "dicomtrolley": version("dicomtrolley"),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def one_line(info: dict[str, str | int]) -> str:
    """The description as one line for the table's header."""
    return (
        f"{info['cores']} cores ({info['cores_usable']} usable), {info['memory_gib']} GiB, "
        f"{info['os']}, Python {info['python']}, grpcio {info['grpcio']}, "
        f"protobuf {info['protobuf']}, pydicom {info['pydicom']}, "
        f"dicomtrolley {info['dicomtrolley']}; load average {info['load_average']}"
    )
