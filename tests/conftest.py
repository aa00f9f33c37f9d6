"""Shared fixtures: real services are in tests/support (one plugin module each)."""

pytest_plugins = ["tests.support.mqtt_fixtures", "tests.support.influx_fixtures", "tests.support.hub_fixtures",
                  "tests.support.browser"]
