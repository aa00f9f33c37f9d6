"""Alerts: device faults and offline devices become alerts people acknowledge and resolve."""
