"""Incidents: the alerts and events of one place and time window, merged into one thing a person looks at."""
