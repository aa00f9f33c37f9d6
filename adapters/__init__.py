"""Protocol adapters: devices that do not speak the MQTT contract, mapped onto it (see hub/adapters.py)."""
