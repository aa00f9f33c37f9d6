"""The device registry: which sites and devices exist, and where they are.

Buildings, floors, names and locations belong here, not in topics. The file is
TOML (`SMARTHUB_REGISTRY`):

    [districts.xinhe]
    zh = "新河街道"
    en = "Xinhe Subdistrict"

    [sites.sunshine]
    name = "阳光花园"
    name_en = "Sunshine Garden"
    district = "xinhe"

    [[devices]]
    site = "sunshine"
    kind = "elevator"
    device = "b3-e1"
    building = "3"
    name = "3号楼1号梯"

Household meters also carry `unit` (单元) and `room` (户号); the room is personal
(`PERSONAL`): viewers see it masked. A device that an adapter's vendor system knows by
another name says so in `aliases` (`aliases = {frigate = "b3_facade"}`), and analytics
zones get their meaning in `zones` (`[devices.zones.b3_facade] label = "high_altitude_throw"`).

A district (街道) groups sites for the district wall (`hub.district`); a site names at most one, which the
file must declare; a site without one still works (it is on no district wall).

A device heard on MQTT but missing from the file is added and flagged
`registered = false`, so operators see it instead of it being dropped.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.topics import DEVICE_RE, SITE_RE

DeviceKey = tuple[str, str, str]
"""(site, kind, device)"""

REGISTRY_TAGS = ("building",)
"""Registry attributes that go on telemetry points as tags (low cardinality only)."""

PERSONAL = ("room",)
"""Registry attributes that identify a household: masked below the operator role (`hub.privacy`), never tags."""
assert not set(PERSONAL) & set(REGISTRY_TAGS)


class RegistryError(ValueError):
    """The registry file cannot be used; the message names the file and the entry."""


class District(BaseModel):
    """A street office's area (街道): the communities one district wall watches."""

    model_config = ConfigDict(extra="forbid")
    zh: str = Field(min_length=1, max_length=64, description="Chinese name (新河街道)")
    en: str | None = Field(None, min_length=1, max_length=64, description="English name (the slug when not given)")


class Site(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    name_en: str | None = Field(None, max_length=64, description="English name, for the walls' English view")
    district: str | None = Field(None, pattern=SITE_RE.pattern, description="Slug of its district (`[districts.*]`)")
    power_cap_kw: float | None = Field(None, ge=0, description="Transformer capacity shared by chargers")
    transformer_kva: float | None = Field(None, gt=0, description="The transformer's rating (when no power_cap_kw)")
    power_factor: float = Field(0.9, gt=0, le=1, description="Power factor turning the kVA into kW")
    margin_pct: float = Field(10.0, ge=0, lt=100, description="Share of the transformer kept free")
    base_load_kw: float = Field(0.0, ge=0, description="Load besides the chargers, when no meter at the "
                                "transformer measures it")
    off_peak: list[tuple[float, float]] = Field(default_factory=list, description="Off-peak (谷电) windows in "
                                                "China local hours, [start, end), e.g. [[22, 8]]")

    @property
    def has_capacity(self) -> bool:
        """Whether a capacity is declared, so what draws power here can be shared out."""
        return self.power_cap_kw is not None or self.transformer_kva is not None


class ZoneRule(BaseModel):
    """What an analytics zone means here: a vendor's object labels seen in it become one of our domain labels
    (`person` lingering in a fire lane is `fire_lane_blocked`). Adapters apply it; the kind's schema checks the
    label when the mapped message arrives."""

    model_config = ConfigDict(extra="forbid")
    label: str = Field(min_length=1, max_length=64, description="The domain label a match becomes")
    objects: list[str] = Field(default_factory=list, description="Vendor labels that match; empty: any object")
    dwell_s: float = Field(0.0, ge=0, description="How long the object must stay in the zone first")


class Device(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site: str = Field(pattern=SITE_RE.pattern)
    kind: str
    device: str = Field(pattern=DEVICE_RE.pattern)
    name: str | None = None
    building: str | None = None
    floor: int | None = None
    unit: str | None = Field(None, max_length=32, description="单元: the entrance of a building (household meters)")
    room: str | None = Field(None, max_length=32, description="户号: a household's door number; personal data "
                             "(masked for viewers, never a tag)")
    location: str | None = None
    heartbeat_s: float | None = Field(None, gt=0, description="Silence after which the device counts as offline")
    aliases: dict[str, str] = Field(default_factory=dict, description="The device's name in the systems adapters "
                                    "speak to, by adapter: `aliases = {frigate = \"front_door\"}`")
    zones: dict[str, ZoneRule] = Field(default_factory=dict, description="Analytics zones by their vendor name")
    place: str | None = Field(None, min_length=1, max_length=64, description="The spot the device is at, shared "
                              "by the devices there (an entrance's door and lane); its own name when not given")
    sees: list[str] = Field(default_factory=list, description="The devices or places it looks at: "
                            "`sees = [\"door-3\"]`; their alerts and its events merge into one incident")
    role: str | None = Field(None, max_length=32, pattern=r"^[a-z][a-z0-9_]*$",
                             description="What the device is for at its site, e.g. `transformer` for the meter of "
                             "the supply that everything shares")
    max_current_a: float | None = Field(None, gt=0, description="Rated current per phase (a device drawing power)")
    phases: int | None = Field(None, ge=1, le=3, description="Supply phases (1 or 3)")
    priority: int = Field(0, description="Served first when higher (a shared public pile, say)")
    floor_calibration: list[tuple[float, int]] = Field(
        default_factory=list, description="A facade camera's floor marks: `[image_y, floor]` pairs, image_y the "
        "pixel row (from the top of the frame its analytics report boxes in) where that floor's slab meets the "
        "facade; at least two, the roof line as the top floor + 1 (hub/incidents/floors.py)")
    registered: bool = True

    @field_validator("floor_calibration")
    @classmethod
    def _monotonic(cls, points: list[tuple[float, int]]) -> list[tuple[float, int]]:
        """Higher floors are higher in the picture (smaller y): anything else is a typo, refused at load."""
        ordered = sorted(points)
        if any(y < 0 for y, _ in ordered):
            raise ValueError("floor_calibration: image_y is a pixel row, never negative")
        for (y1, f1), (y2, f2) in zip(ordered, ordered[1:], strict=False):
            if y1 == y2 or f1 <= f2:
                raise ValueError("floor_calibration: each floor must sit at its own row, higher floors at "
                                 f"smaller image_y ([{y1:g}, {f1}] and [{y2:g}, {f2}] do not)")
        return ordered

    @property
    def key(self) -> DeviceKey:
        return (self.site, self.kind, self.device)

    @property
    def tags(self) -> dict[str, str]:
        return {t: str(v) for t in REGISTRY_TAGS if (v := getattr(self, t)) is not None}


def _toml_value(value: object) -> str:
    """A TOML scalar: JSON's string escapes are valid in TOML basic strings."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(k, ensure_ascii=False)} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False) if isinstance(value, str) else repr(value)


class RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    districts: dict[str, District] = Field(default_factory=dict)
    sites: dict[str, Site] = Field(default_factory=dict)
    devices: list[Device] = Field(default_factory=list)

    @model_validator(mode="after")
    def _districts_declared(self) -> RegistryFile:
        """A site's district is one the file declares: a typo would leave the site off its wall unseen."""
        for slug in self.districts:
            if not SITE_RE.fullmatch(slug):
                raise ValueError(f"district slug {slug!r} is not a slug (lowercase letters, digits, - and _)")
        for slug, site in self.sites.items():
            if site.district is not None and site.district not in self.districts:
                raise ValueError(f"site {slug!r} names district {site.district!r}, which is not declared "
                                 f"under [districts]")
        return self

    def to_toml(self) -> str:
        """The file `Registry.load` reads (written by `smarthub simulate --registry-out`)."""
        def table(header: str, model: BaseModel, exclude: frozenset[str] = frozenset()) -> list[str]:
            values = model.model_dump(exclude_none=True, exclude_defaults=True, exclude=exclude).items()
            return [header, *(f"{k} = {_toml_value(v)}" for k, v in values if v != {}), ""]

        lines = [line for slug, d in self.districts.items() for line in table(f"[districts.{slug}]", d)]
        lines += [line for slug, site in self.sites.items() for line in table(f"[sites.{slug}]", site)]
        lines += [line for device in self.devices for line in table("[[devices]]", device, frozenset({"registered"}))]
        return "\n".join(lines)


class Registry:
    """Registered devices plus those discovered on the wire."""

    def __init__(self, sites: dict[str, Site] | None = None, devices: list[Device] | None = None,
                 districts: dict[str, District] | None = None) -> None:
        self.sites: dict[str, Site] = dict(sites or {})
        self.districts: dict[str, District] = dict(districts or {})
        self._devices: dict[DeviceKey, Device] = {d.key: d for d in devices or ()}

    @classmethod
    def load(cls, path: Path | None, kinds: set[str] | frozenset[str] | dict) -> Registry:  # type: ignore[type-arg]
        """Read a registry file; None gives an empty registry."""
        if path is None:
            return cls()
        try:
            data = RegistryFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise RegistryError(f"registry file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise RegistryError(f"registry file {path} is not valid TOML: {exc}") from None
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise RegistryError(f"registry file {path}: {where}: {first['msg']}") from None
        for device in data.devices:
            if device.kind not in kinds:
                raise RegistryError(f"registry file {path}: device {device.device!r} has unknown kind {device.kind!r}")
        return cls(data.sites, data.devices, data.districts)

    def register(self, site: str, kind: str, device: str) -> None:
        """Add a device known from its broker account (`smarthub device add`) unless the file has it."""
        key = (site, kind, device)
        if key not in self._devices or not self._devices[key].registered:
            self._devices[key] = Device(site=site, kind=kind, device=device)

    def add(self, registry: RegistryFile) -> None:
        """Take the districts, sites and devices of a registry file over what is known (the demo's community)."""
        self.districts.update(registry.districts)
        self.sites.update(registry.sites)
        self._devices.update((d.key, d) for d in registry.devices)

    def district_sites(self, district: str) -> list[str]:
        """The slugs of the sites in a district, in the registry's order."""
        return [slug for slug, site in self.sites.items() if site.district == district]

    def get(self, key: DeviceKey) -> Device | None:
        return self._devices.get(key)

    def ensure(self, key: DeviceKey) -> Device:
        """The registry entry for a device heard on the wire, adding it (unregistered) if new."""
        device = self._devices.get(key)
        if device is None:
            site, kind, name = key
            device = Device(site=site, kind=kind, device=name, registered=False)
            self._devices[key] = device
        return device

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def __len__(self) -> int:
        return len(self._devices)
