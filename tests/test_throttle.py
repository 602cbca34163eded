"""Sign-in throttling with a fake clock: five free failures, then one try per growing interval,
per account and per client address; a throttled try never reaches the password check."""
from __future__ import annotations

import threading

import pytest

from design_studio.throttle import LoginThrottle, LoginThrottled, client_address, guard_login, login_keys


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def fail(throttle, name="cleo", address="10.0.0.5", times=1):
    for _ in range(times):
        throttle.begin(login_keys(name, address))
        throttle.end(login_keys(name, address), False)


def test_five_failures_are_free_then_one_try_per_growing_interval():
    clock = Clock()
    t = LoginThrottle(clock=clock, max_delay=8)
    fail(t, times=5)
    with pytest.raises(LoginThrottled) as refused:
        t.begin(login_keys("cleo", "10.0.0.5"))
    assert refused.value.retry_after == pytest.approx(1.0)
    waits = []
    for _ in range(5):
        clock.now += 0.5
        with pytest.raises(LoginThrottled) as refused:  # always too early at half the interval
            t.begin(login_keys("cleo", "10.0.0.5"))
        clock.now += refused.value.retry_after
        waits.append(refused.value.retry_after + 0.5)
        fail(t)
    assert waits == [1.0, 2.0, 4.0, 8.0, 8.0]  # doubling, capped at max_delay


def test_a_success_clears_the_account_and_the_address():
    clock = Clock()
    t = LoginThrottle(clock=clock)
    for _ in range(7):
        fail(t)
        clock.now += 60
    keys = login_keys("cleo", "10.0.0.5")
    t.begin(keys)
    t.end(keys, True)
    assert t.failures(keys[0]) == 0 and t.failures(keys[1]) == 0
    fail(t, times=5)  # five free failures again
    with pytest.raises(LoginThrottled):
        t.begin(keys)


def test_the_address_is_throttled_across_accounts_and_the_account_across_addresses():
    clock = Clock()
    t = LoginThrottle(clock=clock)
    for i in range(5):  # one address guessing five different names
        fail(t, name=f"user{i}", address="10.0.0.9")
    with pytest.raises(LoginThrottled):
        t.begin(login_keys("ada", "10.0.0.9"))
    t.begin(login_keys("ada", "10.0.0.10"))  # ada from elsewhere is not held back by it
    t.end(login_keys("ada", "10.0.0.10"), True)
    for i in range(5):  # five addresses guessing one account
        fail(t, name="cleo", address=f"10.1.0.{i}")
    with pytest.raises(LoginThrottled):
        t.begin(login_keys("cleo", "10.2.0.1"))


def test_parallel_tries_count_while_they_are_checked():
    clock = Clock()
    t = LoginThrottle(clock=clock)
    keys = login_keys("cleo", "10.0.0.5")
    let_through, refused = 0, 0
    for _ in range(20):  # twenty tries begun before any of them has ended
        try:
            t.begin(keys)
            let_through += 1
        except LoginThrottled:
            refused += 1
    assert let_through == 6 and refused == 14  # five free, then one slot for the interval


def test_a_throttled_try_is_refused_without_checking_the_password():
    from fastapi import HTTPException

    checked = []

    def check(name, password):
        checked.append(password)
        return password == "right-password"

    guarded = guard_login(check, LoginThrottle(clock=Clock()))
    token = client_address.set("10.0.0.7")
    try:
        for i in range(5):
            assert guarded("cleo", f"guess-{i}") is False
        with pytest.raises(HTTPException) as refused:
            guarded("cleo", "right-password")
        assert refused.value.status_code == 429 and refused.value.headers["Retry-After"] == "1"
        assert "Too many failed sign-ins" in refused.value.detail
        assert checked == [f"guess-{i}" for i in range(5)]  # the sixth never reached the check
    finally:
        client_address.reset(token)


def test_an_error_in_the_check_counts_as_a_failure():
    def broken(name, password):
        raise RuntimeError("database gone")

    t = LoginThrottle(clock=Clock())
    guarded = guard_login(broken, t)
    with pytest.raises(RuntimeError):
        guarded("cleo", "x")
    assert t.failures("account:cleo") == 1


def test_threads_hammering_one_account_never_get_more_than_the_free_tries():
    clock = Clock()
    t = LoginThrottle(clock=clock)
    calls = []
    lock = threading.Lock()

    def check(name, password):
        with lock:
            calls.append(password)
        return False

    guarded = guard_login(check, t)

    def worker():
        for _ in range(20):
            try:
                guarded("cleo", "guess")
            except Exception:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert 5 <= len(calls) <= 6  # the clock never moves: 5 free (+ 1 interval slot) of 160 tries


def test_made_up_names_do_not_grow_the_table_without_bound():
    clock = Clock()
    t = LoginThrottle(clock=clock, max_keys=100)
    for i in range(1000):
        clock.now += 1000
        fail(t, name=f"nobody{i}", address=f"10.3.{i // 250}.{i % 250}")
    assert len(t._states) <= 100


def test_nonsense_settings_are_refused():
    with pytest.raises(ValueError, match="base_delay"):
        LoginThrottle(base_delay=0)


def test_the_page_sign_in_is_the_access_policy_behind_the_throttle(studio, settings):
    """Gradio's ``auth`` is ``AccessPolicy.authenticate`` wrapped by the throttle: right and wrong passwords
    answer as the policy does, and after the free failures a try is refused with 429 before any check."""
    from fastapi import HTTPException

    from design_studio.app import launch_options

    studio.add_user("cleo", "creative_director", "cleo-reviews-1")
    auth = launch_options(settings, studio)["auth"]
    assert auth("cleo", "cleo-reviews-1") is True
    for _ in range(5):
        assert auth("cleo", "wrong-password") is False
    with pytest.raises(HTTPException) as refused:
        auth("cleo", "cleo-reviews-1")
    assert refused.value.status_code == 429
    assert studio.access.authenticate("cleo", "cleo-reviews-1") is True  # the policy itself is not throttled
