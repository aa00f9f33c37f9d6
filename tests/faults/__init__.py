"""Fault injection across processes: a suite of its own, not under a source package, because each test breaks
real processes (Mosquitto, InfluxDB, `smarthub run`) under load and checks the whole system's count, not one
module. Its own fixtures (tests/faults/conftest.py) start processes a test may kill."""
