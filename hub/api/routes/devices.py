"""Devices: the registry plus live state."""

from __future__ import annotations

import time

from fastapi import APIRouter

from hub.api.common import READ
from hub.api.deps import LiveDep, RegistryDep, Viewer
from hub.api.guard import GuardedRoute
from hub.api.schemas import DeviceOut, KindQ, SiteQ
from hub.privacy import mask, masked
from hub.registry import PERSONAL

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["devices"])


@router.get("/devices", response_model=list[DeviceOut], responses=READ)
async def devices(
    registry: RegistryDep,
    live: LiveDep,
    user: Viewer,
    site: SiteQ = None,
    kind: KindQ = None,
    online: bool | None = None,
) -> list[DeviceOut]:
    """The registry plus live state of every device (registered or heard on the wire)."""
    now_ms = int(time.time() * 1000)
    out = []
    for device in registry:
        if (site and device.site != site) or (kind and device.kind != kind):
            continue
        state = live.devices.get(device.key)
        is_online = bool(state and state.online(now_ms, live.heartbeat_for(device)))
        if online is not None and is_online != online:
            continue
        row = DeviceOut.of(device, state, is_online)
        if not user.can("operator"):
            if row.last_event is not None:
                row.last_event = masked(row.last_event, device.kind)
            for name in PERSONAL:
                value = getattr(row, name)
                if value is not None:
                    setattr(row, name, mask(value))
        out.append(row)
    out.sort(key=lambda d: (d.site, d.kind, d.device))
    return out
