"""The served app refuses what Gradio's advisories warn about (in the style of gradio's test_routes.py):
path tricks on the file route, foreign origins, over-size uploads, and any read of the database or keys."""
from __future__ import annotations

import urllib.parse

import httpx
import pytest
from team_server import PASSWORDS, login, serve_team, team_settings
from gov_helpers import as_user

SECRET = b"house-archive-secret"


@pytest.fixture(scope="module")
def app(tmp_path_factory, models_dir):
    data = tmp_path_factory.mktemp("secure") / "data"
    settings = team_settings(data, models_dir, max_upload_mb=1)
    for rel in ("vault/archive.bin", "keys/signing.key", ".env"):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(SECRET)
    with serve_team(settings) as (studio, demo, url):
        design = studio.import_image(_png(), name="control.png", actor=as_user(studio, "ann"))
        with httpx.Client(timeout=30) as signed_in:
            assert login(signed_in, url, "ann").status_code == 200
            yield dict(studio=studio, url=url, client=signed_in, data=data, settings=settings,
                       design_file=studio.store.file_path(design))


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 90, 60)).save(buf, format="PNG")
    return buf.getvalue()


def file_url(app, path: str) -> str:
    return f"{app['url']}gradio_api/file={path}"


def test_the_control_file_is_served_to_a_signed_in_user(app):
    # Positive control: without it, every 403 below could be a broken route.
    r = app["client"].get(file_url(app, str(app["design_file"])))
    assert r.status_code == 200 and r.content == app["design_file"].read_bytes()


def test_nothing_is_served_without_signing_in(app):
    with httpx.Client(timeout=30) as anonymous:
        r = anonymous.get(file_url(app, str(app["design_file"])))
        assert r.status_code in (401, 403)
        assert anonymous.get(app["url"] + "gradio_api/info").status_code in (401, 403)


def test_wrong_password_and_expired_session_are_refused(app):
    with httpx.Client(timeout=30) as c:
        assert login(c, app["url"], "ann", "not-her-password").status_code == 400
        assert login(c, app["url"], "nobody", PASSWORDS["ann"]).status_code == 400
        # A session token the server never issued (or one dropped at sign-out / restart).
        c.cookies.set(f"access-token-unsecure-{_cookie_id(app)}", "stale-token")
        assert c.get(file_url(app, str(app["design_file"]))).status_code in (401, 403)
    with httpx.Client(timeout=30) as c:  # signing out ends every session of that user: use another one
        assert login(c, app["url"], "ada").status_code == 200
        assert c.get(file_url(app, str(app["design_file"]))).status_code == 200
        c.get(app["url"] + "logout", follow_redirects=False)
        assert c.get(file_url(app, str(app["design_file"]))).status_code in (401, 403)


def _cookie_id(app) -> str:
    names = [k for k in app["client"].cookies.keys() if k.startswith("access-token-unsecure-")]
    return names[0].removeprefix("access-token-unsecure-")


def secret_paths(app) -> list[str]:
    data, settings = app["data"], app["settings"]
    db = settings.resolved_database_url.removeprefix("sqlite:///")
    return [db, db + "-wal", str(data / "vault" / "archive.bin"), str(data / "keys" / "signing.key"),
            str(data / ".env")]


def test_database_vault_and_keys_are_never_served(app):
    for path in secret_paths(app):
        r = app["client"].get(file_url(app, path))
        assert r.status_code == 403, path
        assert SECRET not in r.content and b"SQLite format" not in r.content


@pytest.mark.parametrize("trick", [
    "{files}/../studio.db",  # plain ..
    "{files}/%2e%2e/studio.db",  # encoded ..
    "{files}/%252e%252e/studio.db",  # double-encoded ..
    "{files}/..%2fkeys/signing.key",  # encoded slash
    "{data}/VAULT/archive.bin",  # other-cased blocked dir
    "{data}/Keys/Signing.Key",
    "{data_upper}/studio.db",
    "\\\\127.0.0.1\\share\\studio.db",  # UNC path
    "//127.0.0.1/share/studio.db",
    ".env",
    "{data}/.env",
    "/etc/passwd",
    "{files}/" + "a" * 9000 + ".png",  # a 9 000-character file name
])
def test_path_tricks_on_the_file_route_are_refused(app, trick):
    files, data = str(app["settings"].files_dir), str(app["data"])
    path = trick.format(files=files, data=data, data_upper=data.upper())
    r = app["client"].get(file_url(app, path))
    assert r.status_code in (403, 404, 414), (trick[:60], r.status_code)
    assert SECRET not in r.content and b"SQLite format" not in r.content and b"root:" not in r.content


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/gradio_api/info",  # the app itself (loopback)
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://localhost:{port}/login",
    "file:///etc/passwd",
])
def test_internal_urls_as_file_paths_are_refused(app, url):
    r = app["client"].get(file_url(app, url.format(port=app["settings"].port)))
    assert r.status_code in (400, 403, 404), (url, r.status_code)
    assert b"root:" not in r.content


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_foreign_or_null_origins_get_no_cors_header(app, origin):
    headers = {"Origin": origin}
    for r in (app["client"].get(app["url"] + "gradio_api/info", headers=headers),
              app["client"].options(app["url"] + "gradio_api/info",
                                    headers={**headers, "Access-Control-Request-Method": "GET"}),
              app["client"].get(file_url(app, str(app["design_file"])), headers=headers)):
        assert "access-control-allow-origin" not in {k.lower() for k in r.headers}, (origin, r.request.method)


def test_the_local_origin_is_still_allowed(app):
    origin = f"http://127.0.0.1:{app['settings'].port}"
    r = app["client"].get(app["url"] + "gradio_api/info", headers={"Origin": origin})
    assert r.status_code == 200 and r.headers.get("access-control-allow-origin") == origin


def test_over_size_uploads_are_refused_and_nothing_is_kept(app):
    big = b"\x89PNG" + b"0" * (1024 * 1024 + 10)
    before = {p for p in app["settings"].scratch_dir.rglob("*") if p.is_file()}
    r = app["client"].post(app["url"] + "gradio_api/upload", files={"files": ("big.png", big, "image/png")})
    assert r.status_code == 413
    after = {p for p in app["settings"].scratch_dir.rglob("*") if p.is_file()}
    assert not [p for p in after - before if p.stat().st_size >= len(big)]


def test_an_upload_with_a_9000_character_name_does_not_escape_the_temp_dir(app):
    r = app["client"].post(app["url"] + "gradio_api/upload",
                           files={"files": ("../" * 10 + "x" * 9000 + ".png", _png(), "image/png")})
    if r.status_code == 200:
        for stored in r.json():
            assert str(app["settings"].scratch_dir) in str(urllib.parse.unquote(stored))
    else:
        assert r.status_code in (400, 403, 413, 422)


def test_launch_options_keep_the_server_private(app):
    from design_studio.app import launch_options

    opts = launch_options(app["settings"], app["studio"])
    assert opts["server_name"] == "127.0.0.1" and opts["share"] is False and opts["strict_cors"] is True
    assert callable(opts["auth"]) and opts["max_file_size"] == "1mb"
    blocked = " ".join(opts["blocked_paths"])
    for must in ("studio.db", "studio.db-wal", "vault", "keys", "models"):
        assert must in blocked
    assert all(str(app["data"]) in p for p in opts["allowed_paths"])
    assert str(app["data"]) not in opts["allowed_paths"]  # never the whole data dir
    import os

    assert os.environ["GRADIO_TEMP_DIR"].startswith(str(app["settings"].scratch_dir))
