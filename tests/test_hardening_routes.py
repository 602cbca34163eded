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


def _load_page(app, client, session_hash):
    """Run the page-load step for ``session_hash`` as that client (what the browser does on open)."""
    fn_index = next(i for i, d in app["demo"].fns.items() if d.name == "on_load")
    r = client.post(app["url"] + "gradio_api/run/predict",
                    json={"data": [], "fn_index": fn_index, "session_hash": session_hash})
    assert r.status_code == 200, r.text[:300]


def _close_page(app, client, session_hash):
    """Open the heartbeat stream for ``session_hash`` and drop it: Gradio then runs the unload step."""
    with client.stream("GET", app["url"] + f"gradio_api/heartbeat/{session_hash}", timeout=30) as r:
        if r.status_code != 200:
            return r.status_code
        next(r.iter_raw())
    return 200


def _wait_gone(path, seconds=10.0):
    end = time.time() + seconds
    while time.time() < end and path.exists():
        time.sleep(0.1)
    return not path.exists()


def test_anonymous_or_crafted_heartbeats_delete_nothing(app):
    root = app["demo"].session_folders.root
    _load_page(app, app["ann"], "annsession1")
    _load_page(app, app["ada"], "adasession1")
    ann_dir, ada_dir = root / "annsession1", root / "adasession1"
    assert ann_dir.is_dir() and ada_dir.is_dir()
    (ann_dir / "work.png").write_bytes(b"ann's scratch")
    with httpx.Client(timeout=30) as anonymous:
        for crafted in ("annsession1", "%21%40%23%24", "....", "-", "%2e%2e", "anonymous"):
            _close_page(app, anonymous, crafted)
    for crafted in ("%21%40%23%24", "%2e%2e", "....", "adasession1"):  # signed in, but not her session
        _close_page(app, app["ann"], crafted)
    time.sleep(1.5)  # the unload step runs in the background after the stream ends
    assert (ann_dir / "work.png").read_bytes() == b"ann's scratch" and ada_dir.is_dir() and root.is_dir()
    # Positive control: her own heartbeat ending removes her folder, and only hers.
    _close_page(app, app["ann"], "annsession1")
    assert _wait_gone(ann_dir) and ada_dir.is_dir()


def test_a_symbol_only_or_foreign_session_hash_gets_no_folder(app):
    root = app["demo"].session_folders.root
    before = {p.name for p in root.iterdir()}
    for crafted in ("!!!!!!", "../../x", "..", "a/b/c/d"):
        _load_page(app, app["ann"], crafted)
    _load_page(app, app["ann"], "adasession1")  # ada's session: ann may not take it over
    assert {p.name for p in root.iterdir()} == before
    assert app["demo"].session_folders.made()["adasession1"] == "ada"


def _scratch_files(app):
    return {p for p in app["settings"].scratch_dir.rglob("*") if p.is_file()}


def test_many_files_in_one_upload_request_are_refused_in_total_and_nothing_is_kept(app):
    part = b"\x89PNG" + b"0" * (900 * 1024)  # each under the 1 MB per-file limit
    before = _scratch_files(app)
    files = [("files", (f"part{i}.png", part, "image/png")) for i in range(10)]
    r = app["ann"].post(app["url"] + "gradio_api/upload", files=files)
    assert r.status_code == 413 and "at most 2 MB" in r.json()["detail"]
    assert not [p for p in _scratch_files(app) - before if p.stat().st_size >= len(part)]
    # Positive control: two such files (1.8 MB in all) pass and are left for the cache sweep.
    r = app["ann"].post(app["url"] + "gradio_api/upload", files=files[:2])
    assert r.status_code == 200 and len(r.json()) == 2
    assert set(r.json()) <= app["demo"].upload_file_set  # the files Gradio's cache sweep deletes when old
    from design_studio.app import UPLOAD_RETENTION_S, UPLOAD_SWEEP_S

    assert app["demo"].delete_cache == (UPLOAD_SWEEP_S, UPLOAD_RETENTION_S)


def test_an_upload_without_a_declared_length_is_refused(app):
    def chunks():
        yield b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a.png\"\r\n\r\n"
        yield b"0" * 1024
        yield b"\r\n--x--\r\n"

    before = _scratch_files(app)
    r = app["ann"].post(app["url"] + "gradio_api/upload", content=chunks(),
                        headers={"content-type": "multipart/form-data; boundary=x"})
    assert r.status_code == 411
    assert _scratch_files(app) == before
