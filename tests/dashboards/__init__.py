"""dashboards/: the big screen and phone pages in a real Chromium, and the Grafana dashboards on a real InfluxDB."""
