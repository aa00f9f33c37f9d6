"""Settings of `smarthub run`: environment variables `SMARTHUB_*`, or a `--config` TOML file.

The TOML file uses the same keys in lower case without the prefix
(`mqtt_url = "mqtt://..."`); an environment variable wins over the file.
Unknown keys are errors, so a typo fails at start instead of being ignored.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, ValidationError, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from devices import REGISTRY
from devices.base import DeviceKind, KindSettings
from hub.alerts.orders import Sla
from hub.topics import TopicError, check_root

SeverityName = Literal["critical", "major", "minor", "info"]


class ConfigError(ValueError):
    """A setting that cannot be used; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class MqttTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: ssl.SSLContext | None


def parse_mqtt_url(url: str) -> MqttTarget:
    """`mqtt://user:pass@host:port` or `mqtts://...` -> where and how to connect."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must look like mqtt://user:pass@host:1883 or mqtts://host:8883")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return MqttTarget(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls=ssl.create_default_context() if tls else None,
    )


DEFAULT_CLIENT_ID = "smarthub"


def default_client_id(target: MqttTarget) -> str:
    """The hub's login names its session: a broker that binds client ids to usernames uses it anyway."""
    return target.username or DEFAULT_CLIENT_ID


class CoreSettings(BaseSettings):
    """The hub's own settings; `Settings` adds every registered kind's thresholds (`DeviceKind.settings`)."""

    model_config = SettingsConfigDict(env_prefix="SMARTHUB_", extra="forbid", env_ignore_empty=True)

    mqtt_url: str = Field("mqtt://127.0.0.1:1883", description="MQTT broker, mqtt://user:pass@host:port or mqtts://")
    mqtt_client_id: str = Field(
        DEFAULT_CLIENT_ID, description="Fixed client id, so the broker keeps our session; unset: the MQTT URL's "
        "username (the shipped broker forces that with use_username_as_clientid), or smarthub without one")
    mqtt_protocol: Literal["3.1.1", "5"] = Field(
        "3.1.1", description="MQTT protocol version; 3.1.1 costs less CPU per message in paho than 5"
    )
    mqtt_share_group: str | None = Field(None, description="Subscribe as $share/<group>/... to run several hubs")
    influx_url: str | None = Field(None, description="InfluxDB base URL; unset means the embedded store")
    influx_db: str = Field("smarthub", description="Database (1.x) or bucket (2.x, 3.x)")
    influx_token: str | None = Field(None, description="Token, or user:password")
    influx_org: str | None = Field(None, description="Organisation on InfluxDB 2.x (default: the token's first)")
    root: str = Field("community", description="Topic root")
    http: str = Field("127.0.0.1:8080", description="host:port of the API and dashboard")
    data_dir: Path = Field(Path("data"), description="State, embedded store, outbox, dead letters")
    database_url: str | None = Field(
        None, description="PostgreSQL for the shared state (accounts, audit, alerts, work orders, dead letters), "
        "postgresql://user:pass@host:5432/db, so several hub copies share it; unset: SQLite files in the data dir")
    outbox_max_mb: float = Field(
        1024.0, gt=0, description="Disk cap of the outbox (MiB) while the store is away: at 80 % the hub says so, "
        "at the cap it stops acknowledging MQTT and the broker queues")
    deadletter_max_mb: float = Field(
        256.0, gt=0, description="Disk cap of the dead letters (MiB): past it, or past 200,000 rows, the oldest "
        "are dropped and counted (smarthub_deadletters_dropped_total)")
    registry: Path | None = Field(None, description="Device registry TOML file")
    admin_token: str | None = Field(None, description="First admin's API token")
    webhooks: str | None = Field(None, description="Comma-separated URLs that receive alert changes")
    escalation_webhooks: str | None = Field(None, description="URLs told when a critical alert is not acknowledged")
    escalate_after_s: float = Field(300.0, gt=0, description="Unacknowledged critical alerts escalate after this")
    incident_window_s: float = Field(300.0, gt=0, description="Alerts and events of one place this close in time "
                                     "are one incident")
    incident_webhooks: str | None = Field(None, description="Comma-separated URLs that receive incident changes "
                                         "(JSON with `type: incident`, or a group robot's markdown)")
    dispatch_within_s: float = Field(3600.0, gt=0, description="Work orders must be dispatched within this")
    resolve_within_s: float = Field(3 * 3600.0, gt=0, description="Work orders must be resolved within this")
    arrive_within_s: float = Field(1800.0, gt=0, description="For a trapped passenger: on site within this")
    sla_by_severity: dict[SeverityName, dict[Literal["dispatch_s", "resolve_s"], float]] = Field(
        default_factory=dict, description='Per-severity deadlines, e.g. {"critical": {"dispatch_s": 900}} (JSON)')
    heartbeat_s: float = Field(300.0, gt=0, description="Silence after which a device counts as offline")
    retention_days: float = Field(7.0, gt=0, description="How long the embedded store keeps points")
    personal_retention_days: float = Field(
        90.0, gt=0, description="Passages, access records and charging sessions (plates, subjects, id tags), and "
        "dead letters, are deleted after this (incidents keep their record, without those personal fields)")
    inside_days: float = Field(
        7.0, gt=0, description="Vehicles inside are rebuilt at start from this many days of stored passages")
    screen_cache_s: float = Field(
        2.0, ge=0, description="The big screen's overview and chart answers are shared this long, then refreshed "
        "in the background (0: off)")
    today_tally: bool = Field(
        True, description="Count today's figures of the last hour as events are accepted (hub.tally) instead of "
        "reading them from the store; off when several hubs share the ingest")
    broker_grace_s: float = Field(
        5.0, ge=0, description="A broker lost this long makes /api/health 503 (ingest is not receiving); the hub's "
        "own alerts for lasting trouble (store, outbox) wait this long too")
    api_max_body_bytes: int = Field(
        64 * 1024, ge=1024, description="Larger request bodies get 413 without being read (Content-Length or "
        "counted as a chunked body streams)")
    adapters: str = Field(
        "adapters.ocpp,adapters.hikvision,adapters.frigate", description="Comma-separated modules of protocol "
        "adapters whose routes the hub serves and whose vendor MQTT topics it reads (each exposes ADAPTER; "
        "hub/adapters.py); every device they serve still needs its account and registry entry; empty: none")
    evidence_media_origins: str = Field(
        "", description="Comma-separated origins (scheme://host[:port]) an evidence export may fetch media from, "
        "besides those the adapters link to (Frigate's SMARTHUB_FRIGATE_URL)")
    evidence_media_max_mb: float = Field(64.0, gt=0, description="A snapshot or clip larger than this (MiB) is "
                                         "listed in the export, not fetched")
    evidence_export_max_mb: float = Field(512.0, gt=0, description="Media beyond this much (MiB) in one export "
                                          "are listed, not fetched")
    evidence_fetch_timeout_s: float = Field(10.0, gt=0, description="An export's media fetch gives up when "
                                            "connecting, or waiting for the next bytes, takes this long")
    evidence_fetch_total_s: float = Field(120.0, gt=0, description="An export's media fetch gives up after this "
                                          "long in all")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parse_mqtt_url(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("postgresql", "postgres"):
            raise ValueError("must look like postgresql://user:pass@host:5432/dbname")
        return value

    @model_validator(mode="after")
    def _client_id_from_login(self) -> CoreSettings:
        if "mqtt_client_id" not in self.model_fields_set:
            self.mqtt_client_id = default_client_id(self.mqtt)
        return self

    @field_validator("root")
    @classmethod
    def _root(cls, value: str) -> str:
        try:
            return check_root(value)
        except TopicError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("http")
    @classmethod
    def _http(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:8080")
        return value

    def redacted(self) -> dict[str, Any]:
        """The settings as JSON-ready data with passwords and tokens hidden, for printing."""
        data = self.model_dump(mode="json")
        for key in ("admin_token", "influx_token"):
            if data[key]:
                data[key] = "***"
        for key in ("mqtt_url", "database_url"):
            url = getattr(self, key)
            password = urlsplit(url).password if url else None
            if password:
                data[key] = url.replace(f":{password}@", ":***@", 1)
        return data

    @property
    def mqtt(self) -> MqttTarget:
        return parse_mqtt_url(self.mqtt_url)

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def sla(self) -> dict[str, Sla]:
        """Work-order deadlines per severity: the defaults, with any per-severity overrides."""
        out = {}
        for severity in ("critical", "major", "minor", "info"):
            over = self.sla_by_severity.get(severity, {})  # type: ignore[call-overload]
            out[severity] = Sla(over.get("dispatch_s", self.dispatch_within_s),
                                over.get("resolve_s", self.resolve_within_s), self.arrive_within_s)
        return out

    def kind_settings(self, kinds: Mapping[str, DeviceKind]) -> dict[str, KindSettings]:
        """Each kind's thresholds as its own model, from the settings of the same names (a kind registered after
        this module was imported has no such settings: it gets its model's defaults)."""
        return {name: kind.settings(**{f: getattr(self, f) for f in kind.settings.model_fields if hasattr(self, f)})
                for name, kind in kinds.items()}

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in (self.webhooks or "").split(",") if u.strip()]

    @property
    def adapter_modules(self) -> list[str]:
        return [m.strip() for m in self.adapters.split(",") if m.strip()]

    @property
    def incident_webhook_urls(self) -> list[str]:
        return [u.strip() for u in (self.incident_webhooks or "").split(",") if u.strip()]

    @property
    def escalation_webhook_urls(self) -> list[str]:
        return [u.strip() for u in (self.escalation_webhooks or "").split(",") if u.strip()]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        toml_file = _TOML_FILE.get("path")
        if toml_file is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=toml_file),)
        return sources


def kind_fields(kinds: Mapping[str, DeviceKind]) -> dict[str, Any]:
    """The kinds' thresholds as settings fields, names and defaults as each kind declares them."""
    fields: dict[str, Any] = {}
    for kind in kinds.values():
        for name, info in kind.settings.model_fields.items():
            if name in CoreSettings.model_fields or name in fields:
                raise TypeError(f"setting {name!r} of kind {kind.name!r} is already taken")
            fields[name] = (info.annotation, info)
    return fields


if TYPE_CHECKING:
    Settings = CoreSettings
else:
    Settings = create_model("Settings", __base__=CoreSettings, __module__=__name__, **kind_fields(REGISTRY))
    Settings.__doc__ = CoreSettings.__doc__


_TOML_FILE: dict[str, Path] = {}


def adapter_prefixes(adapters: str | None) -> tuple[str, ...]:
    """`SMARTHUB_<ADAPTER>_`: the variables an adapter reads itself (`SMARTHUB_FRIGATE_URL`), by the last part of
    each adapter module's name; the adapter checks them, not this module."""
    modules = CoreSettings.model_fields["adapters"].default if adapters is None else adapters
    return tuple(f"SMARTHUB_{m.strip().rsplit('.', 1)[-1].upper()}_" for m in modules.split(",") if m.strip())


def load(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment (and a TOML file); ConfigError with one clear line if bad."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist")
    known = {f"SMARTHUB_{name.upper()}" for name in Settings.model_fields}
    delegated = adapter_prefixes(os.environ.get("SMARTHUB_ADAPTERS"))
    unknown = sorted(k for k in os.environ if k.startswith("SMARTHUB_") and k not in known
                     and not k.startswith(delegated))
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]} (known: {', '.join(sorted(known))})")
    _TOML_FILE.clear()
    if config_file is not None:
        _TOML_FILE["path"] = config_file
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        name = str(err["loc"][0]) if err["loc"] else "?"
        where = f"SMARTHUB_{name.upper()}" + (f" (or {name} in {config_file})" if config_file else "")
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"unknown setting {name!r} in {config_file}") from None
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"bad setting {where}: {message}") from None
    except Exception as exc:  # noqa: BLE001 - e.g. a TOML syntax error
        raise ConfigError(f"cannot read settings: {exc}") from None
    finally:
        _TOML_FILE.clear()
