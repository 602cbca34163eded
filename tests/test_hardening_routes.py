"""Attacks on a served studio with accounts, tried the way an outsider would: parallel wrong sign-ins,
anonymous and crafted heartbeat calls, and one upload request carrying many files."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from team_server import PASSWORDS, login, serve_team, team_settings


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir):
    root = tmp_path_factory.mktemp("harden")
    settings = team_settings(root / "data", models_dir, max_upload_mb=1, key_dir=root / "keys")
    with serve_team(settings) as (studio, demo, url):
        clients = {}
        for name in ("ann", "ada"):  # signed in before any attack, so a throttled address does not stop them
            clients[name] = httpx.Client(timeout=30)
            assert login(clients[name], url, name).status_code == 200
        try:
            yield dict(studio=studio, demo=demo, url=url, settings=settings, **clients)
        finally:
            for c in clients.values():
                c.close()


def _burst(url, name, tries, workers=8):
    def guess(i):
        with httpx.Client(timeout=30) as c:
            r = login(c, url, name, f"guess-{i}")
            return r.status_code, int(r.headers.get("retry-after", 0))

    with ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(guess, range(tries)))
    codes = [code for code, _ in results]
    assert set(codes) <= {400, 429}, codes
    return codes.count(400), max(wait for _, wait in results)


def test_parallel_wrong_sign_ins_are_throttled_and_the_right_password_then_waits(app):
    url = app["url"]
    started = time.perf_counter()
    checked, wait = _burst(url, "cleo", 24)
    assert 5 <= checked <= 6, checked  # five free tries, then at most one per interval
    print(f"24 parallel wrong sign-ins: {checked} checked, {24 - checked} refused in "
          f"{time.perf_counter() - started:.2f} s; retry after {wait} s")
    waits = [wait]
    for _ in range(2):  # each interval lets one more guess through, and the interval doubles
        time.sleep(waits[-1])
        checked, wait = _burst(url, "cleo", 8)
        assert 1 <= checked <= 2, checked
        waits.append(wait)
    assert waits[1] > waits[0] and waits[2] > waits[1], waits
    with httpx.Client(timeout=30) as c:
        r = login(c, url, "cleo")  # the right password during the backoff is refused unchecked
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, waits
        assert "Too many failed sign-ins" in r.json()["detail"]
        assert not [k for k in c.cookies.keys() if k.startswith("access-token")]
    # Sessions signed in before the attack are not affected.
    assert app["ann"].get(url + "gradio_api/info").status_code == 200
