import pytest

from devices.base import FaultSpec, Severity
from hub.alerts.models import OFFLINE, open_alert, resolve
from hub.alerts.reliability import by_device, measure

pytestmark = pytest.mark.unit

H = 3_600_000
MAJOR = FaultSpec(Severity.MAJOR, "停电", "Power failure")
MINOR = FaultSpec(Severity.MINOR, "关门故障", "Door fails to close")


def failure(device: str, opened_h: float, hours: float | None, spec: FaultSpec = MAJOR, code: str = "power_failure"):  # type: ignore[no-untyped-def]
    alert = open_alert("s", "elevator", device, code, spec, None, int(opened_h * H))
    return alert if hours is None else resolve(alert, "ops", None, int((opened_h + hours) * H))


def test_mttr_mtbf_and_availability_over_a_window() -> None:
    alerts = [failure("e1", 10, 2), failure("e1", 50, 4), failure("e1", 60, None),  # still open at the end
              failure("e1", 20, 1, MINOR, "door_close_fault"),  # minor: not a failure
              failure("e1", 30, 5, OFFLINE, "offline")]  # offline: not a failure
    r = measure(alerts, 0, 100 * H)
    assert r.failures == 3
    assert r.mttr_s == 3 * 3600  # (2 h + 4 h) / 2, the open one not yet repaired
    assert r.downtime_s == (2 + 4 + 40) * 3600
    assert r.mtbf_s == (100 - 46) * 3600 / 3
    assert r.availability == 0.54


def test_overlaps_and_window_edges() -> None:
    alerts = [failure("e1", -5, 10), failure("e1", 2, 2), failure("e1", 95, 10)]
    r = measure(alerts, 0, 100 * H)
    assert r.failures == 2  # the first opened before the window
    assert r.downtime_s == (5 + 5) * 3600  # 0-5 (overlapping 2-4 counted once) and 95-100
    assert measure([], 0, H).availability == 1.0 and measure([], 0, H).mtbf_s is None
    assert set(by_device(alerts + [failure("e2", 1, 1)], 0, 100 * H)) == {("s", "elevator", "e1"),
                                                                          ("s", "elevator", "e2")}


def test_codes_a_kind_declares_no_failure_are_left_out() -> None:
    """Power-sharing alerts (over the cap, a car paused long) and maintenance hints are no broken device."""
    from devices import REGISTRY

    charger = REGISTRY["charger"]
    shared = [open_alert("s", "charger", "c1", code, charger.derived[code], None, 10 * H)
              for code in ("charging_over_cap", "charging_paused_long")]
    assert all(a.severity in (Severity.MAJOR, Severity.MINOR) for a in shared)
    over_cap = resolve(shared[0], "ops", None, 20 * H)
    assert measure([over_cap, shared[1]], 0, 100 * H).failures == 0
    assert measure([failure("e1", 1, 1, MAJOR, "door_faults_repeated")], 0, 100 * H).failures == 0
    assert measure([open_alert("s", "charger", "c1", "ground_failure", MAJOR, None, H)], 0, 100 * H).failures == 1
