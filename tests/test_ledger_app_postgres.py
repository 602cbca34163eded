"""The studio's store and ledger on PostgreSQL: a throwaway cluster on loopback, started for this module."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest
from browser import free_port
from gov_helpers import as_user


def _binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


@pytest.fixture(scope="module")
def pg_url():
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql); SQLite tests cover the rest")
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed (pip install 'psycopg[binary]')")
    prefix: list[str] = []
    root = tempfile.mkdtemp(prefix="studio-pg-")
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to own a throwaway cluster")
        os.chmod(root, 0o755)
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(root, "data"), free_port()
    subprocess.run(prefix + [initdb, "-D", data, "-U", "studio", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    subprocess.run(prefix + [pg_ctl, "-D", data, "-l", os.path.join(root, "log"), "-w", "-o",
                             f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql+psycopg://studio@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_store_and_ledger_on_postgresql(pg_url, tmp_path, models_dir):
    from sqlalchemy import text

    from design_studio.services import Studio
    from design_studio.settings import Settings

    studio = Studio(Settings(data_dir=tmp_path / "data", models_dir=models_dir, key_dir=tmp_path / "keys",
                             profile="tiny", device="cpu", database_url=pg_url))
    assert studio.store.engine.dialect.name == "postgresql"
    a, b = studio.generate_concepts("a silk scarf", n=2, seed=1, project="SS27 scarves", actor=as_user(studio, "ana"))
    assert studio.verify_file(studio.store.file_path(a)).ok
    studio.shortlist(a.id, actor=as_user(studio, "ana"))
    studio.decide(a.id, "approved", "", actor=as_user(studio, "chloe"))
    studio.order_sample(a.id, "Maison Duval", "silk twill", "42.10", "EUR", actor=as_user(studio, "ana"))
    studio.release_to_production(a.id, "SS27-SC-01", actor=as_user(studio, "chloe"))
    result = studio.ledger.verify()
    assert result.ok and result.count == 6, result.reason
    [row] = studio.ratio_rows("SS27 scarves")
    assert row["samples_per_style_released"] == 1.0 and row["styles_concepted"] == 2

    with studio.store.engine.begin() as conn:  # an edited row is found on PostgreSQL too
        conn.execute(text("UPDATE ledger_events SET payload = replace(payload, '42.10', '4.10') WHERE seq = 5"))
    bad = studio.ledger.verify()
    assert not bad.ok and bad.first_bad_seq == 5
