"""Local accounts: slow salted password hashes, role checks, and the `studio users` command."""
from __future__ import annotations

import pytest

from design_studio import access as auth
from design_studio.cli import main
from design_studio.errors import InvalidRequest, NotFound


def test_hashes_are_salted_scrypt_and_verify_only_the_right_password():
    first, second = auth.hash_password("cognac-leather"), auth.hash_password("cognac-leather")
    assert first.startswith("scrypt$16384$8$1$") and first != second  # fresh salt each time
    assert "cognac-leather" not in first
    assert auth.verify_password("cognac-leather", first) and auth.verify_password("cognac-leather", second)
    assert not auth.verify_password("cognac-leathe", first)
    assert not auth.verify_password("", first)


@pytest.mark.parametrize("stored", ["", "plain", "md5$abc", "scrypt$x$8$1$AA==$AA==", "scrypt$16384$8$1$!!$!!"])
def test_a_damaged_hash_never_verifies_and_never_raises(stored):
    assert auth.verify_password("anything", stored) is False


@pytest.mark.parametrize("password", ["", "short", None])
def test_weak_passwords_are_refused(password):
    with pytest.raises(InvalidRequest, match="at least 8"):
        auth.hash_password(password)


def test_roles_grant_what_the_studio_promises():
    assert auth.allowed("creative_director", "decide")
    assert not auth.allowed("designer", "decide") and not auth.allowed("admin", "decide")
    assert auth.allowed("admin", "manage_users") and not auth.allowed("creative_director", "manage_users")
    assert not auth.allowed(None, "view")
    assert auth.allowed("system", "create") and auth.allowed("system", "order_sample")
    for act in ("decide", "release", "drop", "override_flag", "set_baseline", "manage_users"):
        assert not auth.allowed("system", act), act


def test_service_accounts_sign_in_and_names_are_checked(studio):
    studio.add_user("ann", "designer", "ann-designs-1")
    assert studio.authenticate("ann", "ann-designs-1")
    assert not studio.authenticate("ann", "wrong-password")
    assert not studio.authenticate("nobody", "ann-designs-1")
    assert not studio.authenticate("", "")
    stored = studio.store.user("ann").password_hash
    assert stored.startswith("scrypt$") and "ann-designs-1" not in stored
    for bad in ("", "../etc", "a b", "x" * 65, "system", "solo"):
        with pytest.raises(InvalidRequest):
            studio.add_user(bad, "designer", "long-enough-1")
    with pytest.raises(InvalidRequest, match="role 'boss' is unknown"):
        studio.add_user("bob", "boss", "long-enough-1")
    with pytest.raises(InvalidRequest, match="already exists"):
        studio.add_user("ann", "admin", "long-enough-1")
    assert [u.name for u in studio.users()] == ["ann"]


def test_only_an_admin_manages_accounts_through_the_service(studio):
    studio.add_user("ada", "admin", "ada-admins-1")
    studio.add_user("ann", "designer", "ann-designs-1")
    ann, ada = studio.access.session("ann"), studio.access.login("ada", "ada-admins-1")
    with pytest.raises(auth.Forbidden, match="'ann' \\(designer\\) may not manage users; only an admin may"):
        studio.add_user("eve", "admin", "eve-sneaks-1", actor=ann)
    with pytest.raises(auth.Forbidden):
        studio.remove_user("ada", actor=ann)
    with pytest.raises(auth.Forbidden):  # a name is not an actor
        studio.add_user("eve", "admin", "eve-sneaks-1", actor="ada")
    studio.add_user("cleo", "creative_director", "cleo-directs-1", actor=ada)
    with pytest.raises(InvalidRequest, match="your own account"):
        studio.remove_user("ada", actor=ada)
    with pytest.raises(InvalidRequest, match="last admin"):
        studio.remove_user("ada")
    studio.remove_user("cleo", actor=ada)
    with pytest.raises(NotFound):
        studio.remove_user("cleo", actor=ada)
    assert sorted(u.name for u in studio.users()) == ["ada", "ann"]


def test_users_command_adds_lists_and_removes(settings, capsys, monkeypatch):
    base = ["--data-dir", str(settings.data_dir)]
    assert main(["users", "add", "cleo", "--role", "creative_director", "--password", "cleo-directs-1", *base]) == 0
    monkeypatch.setenv("STUDIO_NEW_PASSWORD", "ann-designs-1")
    assert main(["users", "add", "ann", "--role", "designer", *base]) == 0
    assert main(["users", "list", *base]) == 0
    out = capsys.readouterr().out
    assert "cleo\tcreative_director" in out and "ann\tdesigner" in out and "cleo-directs-1" not in out
    assert main(["users", "add", "bob", "--role", "designer", "--password", "short", *base]) == 2
    assert "at least 8" in capsys.readouterr().err
    assert main(["users", "remove", "ann", *base]) == 0
    assert main(["users", "remove", "ann", *base]) == 2
    assert "does not exist" in capsys.readouterr().err
    from design_studio.services import Studio

    assert [u.name for u in Studio(settings).users()] == ["cleo"]


def test_without_a_terminal_or_password_the_command_refuses(settings, capsys, monkeypatch):
    monkeypatch.delenv("STUDIO_NEW_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    assert main(["users", "add", "ann", "--role", "designer", "--data-dir", str(settings.data_dir)]) == 2
    assert "no password given" in capsys.readouterr().err
