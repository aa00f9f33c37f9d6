"""Static dashboards served by the hub (the big screen) and provisioning for Grafana."""

from pathlib import Path

BIGSCREEN = Path(__file__).parent / "bigscreen"
MAINTENANCE = Path(__file__).parent / "maintenance"
