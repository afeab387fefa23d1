"""Regenerate the Python code for the wire contract.

The generated ``*_pb2.py``, ``*_pb2.pyi`` and ``*_pb2_grpc.py`` files sit next to
their ``.proto`` files under ``protos/dicomcache/v1``, which installs as the
``dicomcache.v1`` package, so their own imports (``dicomcache.v1.x_pb2``) work as is.

Usage: ``python scripts/generate_protos.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"


def proto_files() -> list[str]:
    """The contract's .proto files, relative to the proto root, sorted."""
    return sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / "dicomcache/v1").glob("*.proto")
    )


def generate(out: Path) -> None:
    """Run protoc once for all files, writing Python, .pyi stubs and gRPC stubs to out."""
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *proto_files(),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=PROTO_ROOT, help="output root (default: protos/)"
    )
    generate(parser.parse_args().out)


if __name__ == "__main__":
    sys.exit(main())
