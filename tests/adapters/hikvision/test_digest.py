"""The Digest pieces, pure: RFC worked examples computed by our functions, header parsing, nonces and counts."""

from __future__ import annotations

import pytest

from adapters.hikvision import digest
from hub.credentials import digest_ha1

pytestmark = pytest.mark.unit

DEVICE, PASSWORD, TARGET = "lpr-east-1", "s3cret-token", "/push/hikvision/sunshine/lpr-east-1"


def test_rfc_2617_section_3_5_example() -> None:
    ha1 = digest_ha1("Mufasa", "Circle Of Life", realm="testrealm@host.com")
    assert digest.response(ha1, "dcd98b7102dd2f0e8b11d0f600bfb0c093", "00000001", "0a4f113b", "auth", "GET",
                           "/dir/index.html") == "6629fae49393a05397450978507c4ef1"


def test_rfc_7616_section_3_9_1_md5_example() -> None:
    ha1 = digest_ha1("Mufasa", "Circle of Life", realm="http-auth@example.org")
    assert digest.response(ha1, "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "00000001",
                           "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", "auth", "GET",
                           "/dir/index.html") == "8ca523f5e9506fed4657c9700eebdbec"


def test_the_rfc_2617_authorization_header_parses() -> None:
    header = ('Digest username="Mufasa", realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",'
              ' uri="/dir/index.html", qop=auth, nc=00000001, cnonce="0a4f113b",'
              ' response="6629fae49393a05397450978507c4ef1", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    params = digest.parse(header)
    assert params is not None
    assert (params["username"], params["qop"], params["nc"], params["uri"]) == ("Mufasa", "auth", "00000001",
                                                                                "/dir/index.html")
    assert digest.parse('Digest username="a\\"b"') == {"username": 'a"b'}


@pytest.mark.parametrize("header", ["Basic abc", 'Digest username="a", username="b"', 'Digest username="a',
                                    "Digest =x", 'Digest username="a" realm="b"', "Digest " + "a=b," * 2000])
def test_malformed_headers_parse_to_none(header: str) -> None:
    assert digest.parse(header) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def answer(nonces: digest.Nonces, nonce: str, nc: int = 1, password: str = PASSWORD, user: str = DEVICE,
           uri: str = TARGET, **extra: str) -> str:
    nc_hex = f"{nc:08x}"
    fields = {"username": user, "realm": "smarthub", "nonce": nonce, "uri": uri, "qop": "auth", "nc": nc_hex,
              "cnonce": "abcdef0123456789", "opaque": nonces.opaque, "algorithm": "MD5",
              "response": digest.response(digest_ha1(DEVICE, password), nonce, nc_hex, "abcdef0123456789", "auth",
                                          "POST", uri)} | extra
    return "Digest " + ", ".join(f'{k}="{v}"' for k, v in fields.items())


def check(nonces: digest.Nonces, header: str, keys: dict[str, str | None] | None = None) -> digest.Opened:
    stored = {"gate": digest_ha1(DEVICE, PASSWORD)} if keys is None else keys
    return digest.verify(header, "POST", TARGET, DEVICE, ("gate", "access"), nonces, lambda: stored)


def test_a_right_answer_opens_once_per_count_and_a_wrong_one_never() -> None:
    nonces = digest.Nonces(clock=Clock())
    nonce = nonces.issue()
    assert check(nonces, answer(nonces, nonce)).kinds == ("gate",)
    assert check(nonces, answer(nonces, nonce)).kinds == ()  # the same count again: a replay
    assert check(nonces, answer(nonces, nonce, nc=3)).kinds == ("gate",)
    assert check(nonces, answer(nonces, nonce, nc=2)).kinds == ("gate",)  # overtaken, still inside the window
    assert check(nonces, answer(nonces, nonce, nc=2)).why == "a replayed Digest nonce count"
    for header in (answer(nonces, nonce, nc=9, password="wrong"), answer(nonces, nonce, nc=9, user="acs-b3-1"),
                   answer(nonces, nonce, nc=9, uri="/push/hikvision/sunshine/other"),
                   answer(nonces, nonce, nc=9, realm="elsewhere"), answer(nonces, nonce, nc=9, qop="auth-int"),
                   answer(nonces, nonce, nc=9, algorithm="SHA-256"), answer(nonces, nonce, nc=9, opaque="x"),
                   answer(nonces, nonce[:-1] + ("0" if nonce[-1] != "0" else "1"), nc=9),
                   answer(nonces, digest.Nonces().issue(), nc=9)):  # another process's nonce
        assert check(nonces, header).kinds == ()
    assert check(nonces, answer(nonces, nonce, nc=9)).kinds == ("gate",)  # refusals took no count


def test_counts_below_the_window_are_refused() -> None:
    nonces = digest.Nonces(clock=Clock())
    nonce = nonces.issue()
    assert check(nonces, answer(nonces, nonce, nc=100)).kinds == ("gate",)
    assert check(nonces, answer(nonces, nonce, nc=100 - digest.WINDOW)).kinds == ()
    assert check(nonces, answer(nonces, nonce, nc=101 - digest.WINDOW)).kinds == ("gate",)


def test_an_expired_nonce_with_a_right_answer_is_stale() -> None:
    clock = Clock()
    nonces = digest.Nonces(clock=clock)
    nonce = nonces.issue()
    clock.now += digest.NONCE_TTL_S
    opened = check(nonces, answer(nonces, nonce))
    assert opened.kinds == () and opened.stale
    assert not check(nonces, answer(nonces, nonce, password="wrong")).stale  # stale only for the right password
    assert check(nonces, answer(nonces, nonces.issue())).kinds == ("gate",)


def test_a_nonce_forgotten_to_keep_the_bound_is_never_taken_again() -> None:
    clock = Clock()
    nonces = digest.Nonces(kept=2, clock=clock)
    first = nonces.issue()
    assert check(nonces, answer(nonces, first)).kinds == ("gate",)
    for _ in range(2):
        clock.now += 0.01
        assert check(nonces, answer(nonces, nonces.issue())).kinds == ("gate",)
    opened = check(nonces, answer(nonces, first))  # its counts are forgotten: replaying nc=1 must not pass
    assert opened.kinds == () and opened.stale


def test_an_account_without_a_digest_key_is_refused_with_why() -> None:
    nonces = digest.Nonces(clock=Clock())
    opened = check(nonces, answer(nonces, nonces.issue()), keys={"gate": None})
    assert opened.kinds == () and "smarthub device add" in opened.why
    both = {"gate": digest_ha1(DEVICE, "other"), "access": digest_ha1(DEVICE, PASSWORD)}
    assert check(nonces, answer(nonces, nonces.issue()), keys=both).kinds == ("access",)


def test_the_challenge_offers_md5_and_qop_auth() -> None:
    text = digest.challenge("n1", "o1", stale=True)
    assert text == 'Digest realm="smarthub", qop="auth", algorithm=MD5, nonce="n1", opaque="o1", stale=true'
