"""--max-memory auto: the container's limit read from fake cgroup v1 and v2 trees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicomcache.server.cgroup import memory_limit
from dicomcache.server.config import Settings

MiB = 1024**2
V1_NONE = "9223372036854771712"  # what v1 reports when nothing limits the group


def tree(tmp_path: Path, files: dict[str, str], membership: str) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    own = tmp_path / "self-cgroup"
    own.write_text(membership)
    return root, own


def test_v2_the_process_group_limit(tmp_path):
    root, own = tree(
        tmp_path,
        {
            "cgroup.controllers": "cpu memory",
            "memory.max": "max",
            "kubepods/pod1/memory.max": "max",
            "kubepods/pod1/app/memory.max": str(512 * MiB),
        },
        "0::/kubepods/pod1/app\n",
    )
    assert memory_limit(root, own) == 512 * MiB


def test_v2_a_tighter_limit_above_wins(tmp_path):
    root, own = tree(
        tmp_path,
        {
            "cgroup.controllers": "memory",
            "pod/memory.max": str(300 * MiB),
            "pod/app/memory.max": str(512 * MiB),
        },
        "0::/pod/app\n",
    )
    assert memory_limit(root, own) == 300 * MiB


def test_v2_inside_a_container_the_mount_is_the_own_group(tmp_path):
    """The namespaced view: /proc/self/cgroup says "/", the root file is the container's."""
    root, own = tree(
        tmp_path, {"cgroup.controllers": "memory", "memory.max": str(256 * MiB)}, "0::/\n"
    )
    assert memory_limit(root, own) == 256 * MiB


def test_v2_no_limit(tmp_path):
    root, own = tree(tmp_path, {"cgroup.controllers": "memory", "memory.max": "max"}, "0::/\n")
    assert memory_limit(root, own) is None


def test_v1_the_memory_controller_line(tmp_path):
    root, own = tree(
        tmp_path,
        {
            "memory/memory.limit_in_bytes": V1_NONE,
            "memory/docker/abc/memory.limit_in_bytes": str(1024 * MiB),
        },
        "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n",
    )
    assert memory_limit(root, own) == 1024 * MiB


def test_v1_host_path_missing_below_a_namespaced_mount(tmp_path):
    """The host's path is not under the container's mount: the mount's own file counts."""
    root, own = tree(
        tmp_path,
        {"memory/memory.limit_in_bytes": str(128 * MiB)},
        "4:memory,memsw:/kubepods/burstable/pod9/c1\n",
    )
    assert memory_limit(root, own) == 128 * MiB


def test_v1_unlimited_and_unreadable(tmp_path):
    root, own = tree(tmp_path, {"memory/memory.limit_in_bytes": V1_NONE}, "4:memory:/\n")
    assert memory_limit(root, own) is None
    assert memory_limit(root, tmp_path / "absent") is None


def test_auto_is_a_fraction_of_the_limit():
    settings = Settings(max_memory="auto")
    assert settings.max_memory_bytes(lambda: 1000 * MiB) == 500 * MiB
    tighter = Settings(max_memory="auto", max_memory_fraction=0.25)
    assert tighter.max_memory_bytes(lambda: 1000 * MiB) == 250 * MiB
    assert Settings(max_memory="64MiB").max_memory_bytes(lambda: 1) == 64 * MiB


def test_auto_without_a_limit_says_what_to_do():
    with pytest.raises(ValueError, match="needs a cgroup memory limit"):
        Settings(max_memory="auto").max_memory_bytes(lambda: None)


@pytest.mark.parametrize("fraction", ["0", "0.9", "-1"])
def test_fraction_out_of_range_is_refused(fraction):
    with pytest.raises(ValueError, match="max_memory_fraction"):
        Settings(max_memory="auto", max_memory_fraction=fraction)


def test_serve_with_auto_and_no_limit_exits_with_the_reason():
    if memory_limit() is not None:
        pytest.skip("this machine's cgroup has a memory limit")
    result = subprocess.run(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--max-memory", "auto"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "'auto' needs a cgroup memory limit" in result.stderr
