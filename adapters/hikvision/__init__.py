"""Hikvision ISAPI event push as `gate` and `access` devices: `body` (safe reading), `mapping` (pure) and `push`
(the HTTP edge)."""

from __future__ import annotations

from adapters.hikvision.push import HikvisionAdapter

ADAPTER = HikvisionAdapter()
