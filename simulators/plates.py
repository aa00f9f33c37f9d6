"""Chinese licence plates in their real formats, for gate simulators.

Ordinary plates: province character, issuing-office letter, five characters of
digits and letters (I and O are never used), e.g. 琼A12345 (blue). New-energy
vehicles carry 8-character green plates with D (battery) or F (hybrid) after
the office letter: 粤BD12345. Trucks and buses carry yellow plates.
"""

from __future__ import annotations

import random

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
CHARS = "0123456789" + LETTERS


def plate(rng: random.Random, home: str = "琼", vehicle_class: str = "car") -> tuple[str, str]:
    """(plate, colour): mostly local plates, some from other provinces."""
    province = home if rng.random() < 0.8 else rng.choice(PROVINCES)
    office = rng.choice("ABCDE") if province == home else rng.choice(LETTERS[:8])
    if vehicle_class in ("truck", "bus"):
        return province + office + "".join(rng.choice("0123456789") for _ in range(5)), "yellow"
    if rng.random() < 0.3:  # new-energy share of a newer estate's cars
        tail = rng.choice(CHARS) + "".join(rng.choice("0123456789") for _ in range(4))
        return province + office + rng.choice("DF") + tail, "green"
    body = "".join(rng.choice(CHARS if i < 2 else "0123456789") for i in range(5))
    return province + office + body, "blue"
