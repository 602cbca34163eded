"""A served studio with accounts (designer, creative director, admin) for the team, API and security tests."""
from __future__ import annotations

from contextlib import contextmanager

PASSWORDS = {"ann": "ann-designs-1", "cleo": "cleo-directs-1", "ada": "ada-admins-1"}
ROLES = {"ann": "designer", "cleo": "creative_director", "ada": "admin"}


def team_settings(data_dir, models_dir, **extra):
    from design_studio.settings import Settings

    return Settings(data_dir=data_dir, models_dir=models_dir, profile="tiny", device="cpu", **extra)


def add_team(studio) -> None:
    for name, role in ROLES.items():
        studio.add_user(name, role, PASSWORDS[name])


@contextmanager
def serve_team(settings, *, max_queue: int = 32):
    """The real app, launched like ``launch`` (auth on because accounts exist), on a free loopback port."""
    from browser import free_port

    from design_studio.app import start
    from design_studio.services import Studio

    add_team(Studio(settings))
    settings.port = free_port()
    studio, demo = start(settings, max_queue=max_queue, prevent_thread_lock=True, quiet=True)
    try:
        yield studio, demo, f"http://127.0.0.1:{settings.port}/"
    finally:
        demo.close()


def login(client, url: str, name: str, password: str | None = None):
    """Sign an httpx client in through Gradio's /login; returns the response."""
    return client.post(url + "login", data={"username": name, "password": password or PASSWORDS[name]})
