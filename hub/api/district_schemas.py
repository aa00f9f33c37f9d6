"""Response models of `GET /api/district` (the district wall), beside the route rather than in `schemas.py`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from hub.api.schemas import AlertCountsOut


class DistrictNameOut(BaseModel):
    slug: str
    zh: str
    en: str = Field(description="The English name; the slug when the registry gives none")


class DistrictDevicesOut(BaseModel):
    total: int
    online: int
    faulted: int = Field(description="Online with an open fault")


class GaugeOut(BaseModel):
    zh: str
    en: str
    unit: str | None = Field(description="Of `value` and `of` (null: a count)")
    value: float = Field(description="The figure (cars in service, kW drawn)")
    of: float | None = Field(description="What it is measured against (cars in all, the cap); null: nothing")
    share: float | None = Field(description="value / of")
    strain: float = Field(ge=0, le=1, description="0 all well .. 1 as bad as it gets, as the kind defines it; "
                          "weighed in `score`")


class CommunityOut(BaseModel):
    site: str = Field(description="The site's slug; its own wall is `/?site=<slug>`")
    zh: str = Field(description="The site's name (its slug when the registry gives none)")
    en: str = Field(description="Its English name (else its name)")
    devices: DistrictDevicesOut
    alerts: AlertCountsOut = Field(description="Its open and acknowledged alerts by severity (the hub's own "
                                   "alerts are in `hub_alerts`, once)")
    overdue_orders: int = Field(description="Work orders not resolved and past a deadline")
    gauges: dict[str, GaugeOut] = Field(description="Each kind's district gauge by name (`DeviceKind.district`), "
                                        "e.g. elevator availability and charging load against the cap; a kind "
                                        "the community has none of gives none")
    score: float = Field(description="Worst first: higher is worse (formula in `weights` and hub/district.py)")
    rank: int = Field(description="1 is the worst")


class DistrictTotalsOut(BaseModel):
    communities: int
    devices: DistrictDevicesOut
    alerts: AlertCountsOut
    overdue_orders: int


class WeightsOut(BaseModel):
    severity: dict[str, float] = Field(description="Per open alert of each severity")
    acknowledged_factor: float = Field(description="An acknowledged alert counts this share of an open one")
    overdue_order: float
    offline_share: float = Field(description="Times the share of the community's devices offline")
    gauge_strain: float = Field(description="Times each gauge's strain")


class DistrictOut(BaseModel):
    """One district wall: its communities worst first. Counts only, no personal data."""

    time: str
    district: DistrictNameOut
    communities: list[CommunityOut] = Field(description="Worst first (highest `score`, ties by slug)")
    totals: DistrictTotalsOut
    hub_alerts: AlertCountsOut = Field(description="The hub's own alerts (site `*`): they concern every community")
    weights: WeightsOut


class DistrictsOut(BaseModel):
    time: str
    districts: list[DistrictOut] = Field(description="Every district the registry declares, in its order")

