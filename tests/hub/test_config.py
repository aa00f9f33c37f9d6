from pathlib import Path

import pytest

from hub.config import ConfigError, load, parse_mqtt_url

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SMARTHUB_"):
            monkeypatch.delenv(key)


def test_defaults_are_the_contracts() -> None:
    s = load()
    assert (s.mqtt_url, s.influx_url, s.influx_db, s.root, s.http) == (
        "mqtt://127.0.0.1:1883", None, "smarthub", "community", "127.0.0.1:8080")


def test_mqtt_urls() -> None:
    t = parse_mqtt_url("mqtt://hub:p%40ss@broker.local:1884")
    assert (t.host, t.port, t.username, t.password, t.tls) == ("broker.local", 1884, "hub", "p@ss", None)
    tls = parse_mqtt_url("mqtts://broker")
    assert tls.port == 8883 and tls.tls is not None


def test_environment_wins_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "hub.toml"
    conf.write_text('root = "from-file"\ninflux_db = "filedb"\n')
    monkeypatch.setenv("SMARTHUB_ROOT", "from-env")
    s = load(conf)
    assert (s.root, s.influx_db) == ("from-env", "filedb")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMARTHUB_MQTT_URL": "http://x"}, "SMARTHUB_MQTT_URL: must look like"),
        ({"SMARTHUB_MQTT_URL": "mqtt://h:99999"}, "port must be a number"),
        ({"SMARTHUB_HTTP": "8080"}, "SMARTHUB_HTTP: must be host:port"),
        ({"SMARTHUB_ROOT": "a/+"}, "SMARTHUB_ROOT"),
        ({"SMARTHUB_HEARTBEAT_S": "0"}, "SMARTHUB_HEARTBEAT_S"),
        ({"SMARTHUB_MQTT_PROTOCOL": "4"}, "SMARTHUB_MQTT_PROTOCOL"),
        ({"SMARTHUB_INFLUX_UR": "http://x"}, "unknown setting SMARTHUB_INFLUX_UR"),
        ({"SMARTHUB_EVIDENCE_MEDIA_MAX": "1"}, "unknown setting SMARTHUB_EVIDENCE_MEDIA_MAX"),
        ({"SMARTHUB_ADAPTERS": "adapters.ocpp", "SMARTHUB_FRIGATE_URL": "http://f:5000"},
         "unknown setting SMARTHUB_FRIGATE_URL"),  # Frigate's adapter is not loaded: nobody reads it
    ],
)
def test_bad_settings_say_which_in_one_line(env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message) as info:
        load()
    assert "\n" not in str(info.value)


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    conf = tmp_path / "hub.toml"
    conf.write_text("mqtt_ulr = 'mqtt://x'\n")
    with pytest.raises(ConfigError, match="unknown setting 'mqtt_ulr'"):
        load(conf)


def test_redacted_hides_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://hub:s3cret@broker:1883")
    monkeypatch.setenv("SMARTHUB_INFLUX_TOKEN", "tok")
    monkeypatch.setenv("SMARTHUB_DATABASE_URL", "postgresql://hub:pgs3cret@db:5432/hub")
    shown = str(load().redacted())
    assert "s3cret" not in shown and "tok'" not in shown and "***" in shown and "pgs3cret" not in shown


def test_a_database_url_must_be_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load().database_url is None  # the default: SQLite files in the data dir
    monkeypatch.setenv("SMARTHUB_DATABASE_URL", "mysql://db/hub")
    with pytest.raises(ConfigError, match="SMARTHUB_DATABASE_URL"):
        load()


def test_outbox_cap_defaults_to_a_gibibyte_and_refuses_nonsense(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load().outbox_max_mb == 1024
    monkeypatch.setenv("SMARTHUB_OUTBOX_MAX_MB", "0.5")
    assert load().outbox_max_mb == 0.5
    monkeypatch.setenv("SMARTHUB_OUTBOX_MAX_MB", "0")
    with pytest.raises(ConfigError, match="SMARTHUB_OUTBOX_MAX_MB"):
        load()


def test_client_id_follows_the_login_unless_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped broker replaces a client id with the username (use_username_as_clientid), so the hub's
    # session is its login's: deriving the id from it keeps logs, hub alerts and the session in step.
    assert load().mqtt_client_id == "smarthub"  # no login, no binding: the fixed default
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://hub-b:pw@broker:1883")
    assert load().mqtt_client_id == "hub-b"
    monkeypatch.setenv("SMARTHUB_MQTT_CLIENT_ID", "")  # empty counts as unset
    assert load().mqtt_client_id == "hub-b"
    monkeypatch.setenv("SMARTHUB_MQTT_CLIENT_ID", "smarthub")  # an explicit setting wins, even the default's value
    assert load().mqtt_client_id == "smarthub"
    monkeypatch.delenv("SMARTHUB_MQTT_CLIENT_ID")
    conf = tmp_path / "hub.toml"
    conf.write_text('mqtt_client_id = "from-file"\n')
    assert load(conf).mqtt_client_id == "from-file"
    monkeypatch.setenv("SMARTHUB_MQTT_URL", "mqtt://h%40b:pw@broker:1883")
    assert load().mqtt_client_id == "h@b"  # the username as the broker sees it, unquoted


def test_an_adapters_own_variables_are_its_to_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """`SMARTHUB_FRIGATE_URL` is read by adapters.frigate (with the default adapters): `smarthub run` must not
    refuse it as unknown, as it did."""
    monkeypatch.setenv("SMARTHUB_FRIGATE_URL", "http://frigate:5000")
    monkeypatch.setenv("SMARTHUB_EVIDENCE_MEDIA_MAX_MB", "8")
    assert load().evidence_media_max_mb == 8.0
