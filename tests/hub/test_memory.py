import subprocess
import sys

import pytest

from hub.memory import pin_mmap_threshold

pytestmark = pytest.mark.unit

FREED_BLOCK = """
import os, sys
from pathlib import Path
from hub.memory import pin_mmap_threshold
if sys.argv[1] == "pin":
    assert pin_mmap_threshold()
def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
first = bytearray(8 << 20)  # its own mapping; freeing it raises glibc's threshold to 8 MiB
del first
before = rss()
second = bytearray(8 << 20)  # now from the heap, unless the threshold is pinned
kept = [bytearray(200) for _ in range(1000)]  # live objects above it: the heap cannot shrink
del second
print(rss() - before)
"""


def _left_resident(mode: str) -> int:
    run = subprocess.run([sys.executable, "-c", FREED_BLOCK, mode], capture_output=True, text=True, check=True)
    return int(run.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux") or not pin_mmap_threshold(), reason="glibc only")
def test_a_freed_large_block_goes_back_to_the_system_once_the_threshold_is_pinned() -> None:
    assert _left_resident("pin") < 2 << 20
    assert _left_resident("as-is") > 6 << 20  # what the pin is for: glibc's own adjustment keeps it
