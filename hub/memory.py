"""Make the C allocator give freed large blocks back to the system (glibc), so RSS follows what is live.

glibc serves allocations above its mmap threshold (128 KiB at first) with their own
mappings, returned when freed; but freeing such a block raises the threshold to its size
(up to 32 MiB), so the next block that large comes from the heap, and the heap keeps what
is freed in its middle. The hub frees blocks of several MiB now and then: the set that
answers DUP checks after a reconnect (an 8 MiB table, dropped again some seconds later),
catch-up requests after a store outage. Measured in process: each reconnect's lookup set
then left 16-17 MiB resident after it was dropped (38 MiB against 22 after four rounds);
with the threshold pinned, 1 MiB. Pinning it (which turns the adjustment off) keeps such
blocks in their own mappings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3
"""mallopt's parameter number (glibc malloc.h)."""
MMAP_THRESHOLD = 256 * 1024
"""Blocks this large or larger get their own mapping: few enough (a mapping costs a system call and
zeroed pages) that the hub's small objects never do."""


def pin_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at `threshold`; False where there is no glibc (macOS, musl: left as is)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
