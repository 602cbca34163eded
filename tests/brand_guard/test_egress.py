"""Guarded mode: env flags set, non-loopback connects refused before they happen, loopback served."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from brand_guard import egress
from brand_guard.errors import EgressRefused, UnsafeModel


@pytest.fixture
def guard():
    egress.install_guard()
    yield
    egress.uninstall_guard()


@pytest.fixture
def no_real_connect(monkeypatch):
    """Replace the real connect below the guard so a test can never reach the network even if the guard failed."""
    attempts = []

    def fake_connect(self, address):
        attempts.append(address)
        raise AssertionError(f"real connect reached for {address!r}")

    monkeypatch.setattr(socket.socket, "connect", fake_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", fake_connect)
    return attempts


def test_env_flags_set_and_restored(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    egress.install_guard()
    try:
        egress.install_guard()  # idempotent
        assert os.environ["HF_HUB_OFFLINE"] == "1"
        assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
        assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"
        assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
        assert os.environ["DO_NOT_TRACK"] == "1"
        assert egress.guard_installed()
    finally:
        egress.uninstall_guard()
    assert "HF_HUB_OFFLINE" not in os.environ
    assert not egress.guard_installed()


def test_non_loopback_connect_refused_before_connecting(no_real_connect, guard):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(EgressRefused, match=r"203\.0\.113\.5:443"):
            s.connect(("203.0.113.5", 443))
        with pytest.raises(EgressRefused, match=r"203\.0\.113\.5:80"):
            s.connect_ex(("203.0.113.5", 80))
    finally:
        s.close()
    with pytest.raises(EgressRefused, match="huggingface.co:443"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
    assert no_real_connect == []


def test_udp_sendto_refused(guard):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with pytest.raises(EgressRefused, match="203.0.113.9:53"):
            s.sendto(b"x", ("203.0.113.9", 53))
    finally:
        s.close()


def test_loopback_server_accepts_under_guard(guard):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    received = []

    def serve():
        conn, _ = server.accept()
        received.append(conn.recv(16))
        conn.close()

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.create_connection(("localhost", port), timeout=5) as client:
        client.sendall(b"hello")
    thread.join(5)
    server.close()
    assert received == [b"hello"]


def test_is_loopback():
    assert egress.is_loopback("127.0.0.1") and egress.is_loopback("127.8.9.10")
    assert egress.is_loopback("::1") and egress.is_loopback("[::1]") and egress.is_loopback("::ffff:127.0.0.1")
    assert egress.is_loopback("localhost")
    assert not egress.is_loopback("203.0.113.5")
    assert not egress.is_loopback("10.0.0.1")
    assert not egress.is_loopback("example.com")
    assert not egress.is_loopback("127.0.0.1.evil.com")


def test_refuse_share():
    egress.refuse_share(False)
    with pytest.raises(EgressRefused, match="share=True"):
        egress.refuse_share(True)


def test_check_model_dir(tmp_path):
    ok = tmp_path / "ok"
    ok.mkdir()
    (ok / "model.safetensors").write_bytes(b"\0")
    (ok / "config.json").write_text('{"hidden_size": 32}')
    assert len(egress.check_model_dir(ok)) == 2

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(UnsafeModel, match="pytorch_model.bin"):
        egress.check_model_dir(pickled)
    assert egress.check_model_dir(pickled, allow_weights_only=frozenset({"pytorch_model.bin"}))

    remote = tmp_path / "remote"
    remote.mkdir()
    (remote / "config.json").write_text('{"auto_map": {"AutoModel": "modeling_x.XModel"}}')
    with pytest.raises(UnsafeModel, match="auto_map"):
        egress.check_model_dir(remote)
    (remote / "config.json").write_text("{}")
    (remote / "modeling_x.py").write_text("import os")
    with pytest.raises(UnsafeModel, match="modeling_x.py"):
        egress.check_model_dir(remote)
