"""Per-user rate limits: sliding windows per tier, tokens per minute, shared through SQLite."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import costguard
from _helpers import Clock
from costguard._errors import RateLimitedError
from costguard._scope import Scope
from costguard.layers.ratelimit import RateLimitLayer
from costguard.spend import RateLimits
from costguard.spend._ratelimit import RateStore
from costguard.testing import FakeProvider

HI = [{"role": "user", "content": "hi"}]
T0 = 1_000_000.0


Guard = tuple[costguard.CostGuardClient, Any, FakeProvider]
MakeGuard = Callable[..., Guard]


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def make_guard(tmp_path: Path, clock: Clock) -> Iterator[MakeGuard]:
    """Build guards on one ledger file, each with its own RateLimitLayer; closed at the end."""
    made: list[tuple[costguard.CostGuardClient, RateLimitLayer]] = []

    def make(
        tiers: dict[str, int] | None = None, *, is_async: bool = False, **options: Any
    ) -> Guard:
        options.setdefault("clock", clock)
        options.setdefault("sleep", clock.sleep)
        options.setdefault("asleep", clock.asleep)
        limits = RateLimits(tiers=tiers or {"free": 3, "pro": 5}, **options)
        path = tmp_path / "l.db"
        layer = RateLimitLayer(limits, path)
        guard = costguard.CostGuardClient(ledger=path, cache=None, layers=[layer])
        made.append((guard, layer))
        fake = FakeProvider()
        client = guard.wrap(fake.async_openai() if is_async else fake.openai())
        return guard, client, fake

    yield make
    for guard, layer in made:
        guard.close()
        layer.close()


def ask(client: Any, **params: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o-mini", messages=HI, **params)


# -- requests per window --------------------------------------------------------------------


def test_the_call_after_the_limit_is_refused_with_retry_after_and_never_sent(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """The (N+1)th call raises RateLimitedError; retry_after = oldest + window - now."""
    guard, client, fake = make_guard({"free": 3}, per="hour")
    with guard.scope(user="u1", tier="free"):
        for _ in range(3):
            ask(client)
            clock.advance(10)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert info.value.retry_after == 3600 - 30
    assert info.value.key == "user:u1"
    assert len(fake.requests) == 3


def test_the_window_slides_as_the_oldest_call_leaves_it(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """Once the oldest call is a full window old, one more call fits, and no more."""
    guard, client, fake = make_guard({"free": 2}, per="minute")
    with guard.scope(user="u1", tier="free"):
        ask(client)
        clock.advance(20)
        ask(client)
        clock.advance(40)  # the first call is now exactly 60 s old
        ask(client)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert info.value.retry_after == 20  # the second call leaves at 20 + 60
    assert len(fake.requests) == 3


def test_a_numeric_window_is_that_many_seconds(make_guard: MakeGuard, clock: Clock) -> None:
    """per=90 means a 90-second window."""
    guard, client, _ = make_guard({"free": 1}, per=90)
    with guard.scope(user="u1", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
        assert info.value.retry_after == 90
        clock.advance(90)
        ask(client)


def test_each_tier_has_its_own_allowance(make_guard: MakeGuard) -> None:
    """A free user gets the free allowance and a pro user the pro one."""
    guard, client, fake = make_guard({"free": 1, "pro": 3})
    with guard.scope(user="a", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)
    with guard.scope(user="b", tier="pro"):
        for _ in range(3):
            ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)
    assert len(fake.requests) == 4


def test_the_plan_can_come_from_a_tag_leaving_tier_to_the_router(
    tmp_path: Path, clock: Clock
) -> None:
    """With tier_tag="plan", the rate limit reads the plan from the scope's tags, so the same
    scope can also carry a router's draft tier."""
    guard = costguard.CostGuardClient(
        ledger=tmp_path / "l.db",
        cache=None,
        rate_limits=RateLimits({"free": 1, "pro": 2}, tier_tag="plan", clock=clock),
        router=costguard.Router(tiers={"draft": {"gpt-4o": "gpt-4o-mini"}}),
    )
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    with guard.scope(user="a", tags={"plan": "pro"}, tier="draft"):
        client.chat.completions.create(model="gpt-4o", messages=HI)
        client.chat.completions.create(model="gpt-4o", messages=HI)
        with pytest.raises(RateLimitedError):
            client.chat.completions.create(model="gpt-4o", messages=HI)
    with (
        guard.scope(user="b", tier="draft"),
        pytest.raises(costguard.ConfigurationError, match="plan"),
    ):
        client.chat.completions.create(model="gpt-4o", messages=HI)
    assert [r.served_model for r in guard.ledger.records() if r.status == "ok"] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]
    guard.close()


def test_users_are_counted_separately(make_guard: MakeGuard) -> None:
    """One user at the limit does not hold back another user."""
    guard, client, fake = make_guard({"free": 1})
    with guard.scope(user="u1", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)
    with guard.scope(user="u2", tier="free"):
        ask(client)
    assert len(fake.requests) == 2


def test_calls_without_a_user_share_the_anonymous_key(make_guard: MakeGuard) -> None:
    """Calls whose scope has no user are all counted under the key "anonymous"."""
    guard, client, _ = make_guard({"free": 2})
    with guard.scope(tier="free"):
        ask(client)
    with guard.scope(tier="free", feature="other"):
        ask(client)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert info.value.key == "anonymous"


def test_a_limit_may_be_per_tenant(make_guard: MakeGuard) -> None:
    """key="tenant" counts the calls of every user of a tenant together."""
    guard, client, _ = make_guard({"free": 2}, key="tenant")
    with guard.scope(tenant="acme", user="u1", tier="free"):
        ask(client)
    with guard.scope(tenant="acme", user="u2", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert info.value.key == "tenant:acme"


def test_a_tier_change_keeps_the_users_count(make_guard: MakeGuard) -> None:
    """Counts are per user, not per tier: upgrading mid-window raises the allowance only."""
    guard, client, _ = make_guard({"free": 1, "pro": 2})
    with guard.scope(user="u1", tier="free"):
        ask(client)
    with guard.scope(user="u1", tier="pro"):
        ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)


def test_a_failed_call_still_counts_as_a_request(make_guard: MakeGuard) -> None:
    """A call the provider rejects was sent, so it uses up a request."""
    guard, client, fake = make_guard({"free": 1})
    fake.fail(500)
    with guard.scope(user="u1", tier="free"):
        with pytest.raises(openai.InternalServerError):
            ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)
    assert len(fake.requests) == 1


# -- tiers and configuration ----------------------------------------------------------------


def test_an_unknown_tier_is_a_configuration_error_naming_the_known_tiers(
    make_guard: MakeGuard,
) -> None:
    """A scope tier the limits do not know fails before anything is sent, naming every tier."""
    guard, client, fake = make_guard({"free": 1, "pro": 2})
    with guard.scope(user="u1", tier="gold"), pytest.raises(costguard.ConfigurationError) as info:
        ask(client)
    assert "'gold'" in str(info.value)
    assert "'free'" in str(info.value) and "'pro'" in str(info.value)
    assert fake.requests == []


def test_a_scope_without_a_tier_is_a_configuration_error(make_guard: MakeGuard) -> None:
    """Without default_tier, a call whose scope sets no tier fails before sending."""
    guard, client, fake = make_guard({"free": 1})
    with guard.scope(user="u1"), pytest.raises(costguard.ConfigurationError, match="tier"):
        ask(client)
    assert fake.requests == []


def test_default_tier_applies_to_calls_without_a_tier(make_guard: MakeGuard) -> None:
    """default_tier counts tier-less calls under that tier's allowance."""
    guard, client, _ = make_guard({"free": 1, "pro": 5}, default_tier="free")
    with guard.scope(user="u1"):
        ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"tiers": {}}, "tiers"),
        ({"tiers": {"free": 0}}, "tiers['free']"),
        ({"tiers": {"free": -1}}, "tiers['free']"),
        ({"tiers": {"free": 1.5}}, "tiers['free']"),
        ({"tiers": {"free": True}}, "tiers['free']"),
        ({"tiers": {"free": 1}, "per": "week"}, "per"),
        ({"tiers": {"free": 1}, "per": 0}, "per"),
        ({"tiers": {"free": 1}, "per": float("inf")}, "per"),
        ({"tiers": {"free": 1}, "tokens_per_minute": 0}, "tokens_per_minute"),
        ({"tiers": {"free": 1}, "tokens_per_minute": "many"}, "tokens_per_minute"),
        ({"tiers": {"free": 1}, "tokens_per_minute": {"gold": 5}}, "tokens_per_minute"),
        ({"tiers": {"free": 1}, "tokens_per_minute": {"free": -5}}, "tokens_per_minute"),
        ({"tiers": {"free": 1}, "key": "model"}, "key"),
        ({"tiers": {"free": 1}, "default_tier": "gold"}, "default_tier"),
        ({"tiers": {"free": 1}, "max_wait_s": -1}, "max_wait_s"),
    ],
)
def test_bad_settings_are_refused_at_construction_naming_the_field(
    options: dict[str, Any], field: str
) -> None:
    """Each invalid RateLimits argument raises ConfigurationError that names it."""
    with pytest.raises(costguard.ConfigurationError) as info:
        RateLimits(**options)
    assert field in str(info.value)


# -- wait mode ------------------------------------------------------------------------------


def test_wait_mode_sleeps_exactly_until_the_call_fits(make_guard: MakeGuard, clock: Clock) -> None:
    """With wait=True a refused call sleeps retry_after through the injected sleep, then goes."""
    guard, client, fake = make_guard({"free": 1}, per="minute", wait=True, max_wait_s=90)
    with guard.scope(user="u1", tier="free"):
        ask(client)
        clock.advance(15)
        ask(client)
    assert clock.waits == [45]
    assert len(fake.requests) == 2


def test_wait_mode_gives_up_at_once_when_the_wait_exceeds_max_wait(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """A wait longer than max_wait_s raises RateLimitedError without sleeping."""
    guard, client, fake = make_guard({"free": 1}, per="hour", wait=True, max_wait_s=30)
    with guard.scope(user="u1", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert info.value.retry_after == 3600
    assert clock.waits == []
    assert len(fake.requests) == 1


def test_wait_mode_stops_after_max_wait_when_others_take_the_freed_slot(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """If another caller takes each freed slot, the waiter gives up once max_wait_s is spent."""
    guard, client, fake = make_guard({"free": 1}, per="minute", wait=True, max_wait_s=100)
    other_guard, other, other_fake = make_guard({"free": 1}, per="minute")

    def thief() -> None:
        with other_guard.scope(user="u1", tier="free"):
            ask(other)

    with guard.scope(user="u1", tier="free"):
        ask(client)
        clock.during_sleep = thief
        with pytest.raises(RateLimitedError) as info:
            ask(client)
    assert clock.waits == [60]
    assert info.value.retry_after == 60
    assert (len(fake.requests), len(other_fake.requests)) == (1, 1)


# -- async ----------------------------------------------------------------------------------


def test_an_async_client_is_limited_the_same_way(make_guard: MakeGuard, clock: Clock) -> None:
    """Through AsyncOpenAI the (N+1)th call is refused with the same retry_after."""
    guard, client, fake = make_guard({"free": 2}, per="minute", is_async=True)

    async def main() -> RateLimitedError:
        async with guard.scope(user="u1", tier="free"):
            await ask(client)
            clock.advance(5)
            await ask(client)
            with pytest.raises(RateLimitedError) as info:
                await ask(client)
            return info.value

    error = asyncio.run(main())
    assert error.retry_after == 55  # the first call, 5 s ago, leaves the minute in 55 s
    assert len(fake.requests) == 2


def test_an_async_waiter_awaits_the_injected_sleep(make_guard: MakeGuard, clock: Clock) -> None:
    """Async wait mode awaits asleep for retry_after, then sends the call."""
    guard, client, fake = make_guard({"free": 1}, per="minute", wait=True, is_async=True)

    async def main() -> None:
        async with guard.scope(user="u1", tier="free"):
            await ask(client)
            clock.advance(50)
            await ask(client)

    asyncio.run(main())
    assert clock.waits == [10]
    assert len(fake.requests) == 2


def test_an_async_waiter_gives_up_after_max_wait(make_guard: MakeGuard, clock: Clock) -> None:
    """Async wait mode raises, without sleeping, when the wait exceeds max_wait_s."""
    guard, client, _ = make_guard({"free": 1}, per="hour", wait=True, is_async=True)

    async def main() -> None:
        async with guard.scope(user="u1", tier="free"):
            await ask(client)
            await ask(client)

    with pytest.raises(RateLimitedError):
        asyncio.run(main())
    assert clock.waits == []


# -- tokens per minute ----------------------------------------------------------------------


def test_tokens_are_charged_after_a_call_and_refuse_the_next_minute(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """Once the last minute's tokens reach the allowance, calls wait for the charge to age out."""
    guard, client, fake = make_guard({"free": 100}, tokens_per_minute=100)
    fake.reply("a", usage=costguard.Usage(input_tokens=40, output_tokens=30))  # 70
    fake.reply("b", usage=costguard.Usage(input_tokens=20, output_tokens=10))  # 30
    with guard.scope(user="u1", tier="free"):
        ask(client)
        clock.advance(10)
        ask(client)  # 70 < 100: admitted, and brings the minute to 100
        clock.advance(5)
        with pytest.raises(RateLimitedError, match="tokens per minute") as info:
            ask(client)
        assert info.value.retry_after == 45  # the 70 leave at 60 s, leaving 30 < 100
        clock.advance(45)
        ask(client)
    assert len(fake.requests) == 3


def test_tokens_per_minute_may_differ_by_tier(make_guard: MakeGuard) -> None:
    """A tier left out of the tokens_per_minute mapping has no token limit."""
    guard, client, fake = make_guard({"free": 100, "pro": 100}, tokens_per_minute={"free": 10})
    fake.reply("x", usage=costguard.Usage(input_tokens=50, output_tokens=50), times=4)
    with guard.scope(user="p", tier="pro"):
        ask(client)
        ask(client)
    with guard.scope(user="f", tier="free"):
        ask(client)
        with pytest.raises(RateLimitedError):
            ask(client)


def test_a_streams_tokens_are_charged_when_it_finishes(make_guard: MakeGuard) -> None:
    """A stream charges nothing until it is read to the end, then its whole usage."""
    guard, client, fake = make_guard({"free": 100}, tokens_per_minute=100)
    fake.reply("long answer", usage=costguard.Usage(input_tokens=80, output_tokens=40), times=2)
    with guard.scope(user="u1", tier="free"):
        first = ask(client, stream=True)
        second = ask(client, stream=True)  # admitted: the first has not finished
        list(first)
        with pytest.raises(RateLimitedError, match="tokens"):
            ask(client)
        list(second)
    assert len(fake.requests) == 2


def test_an_async_streams_tokens_are_charged_when_it_finishes(
    make_guard: MakeGuard, clock: Clock
) -> None:
    """An async stream's usage is charged once the stream has been read."""
    guard, client, fake = make_guard({"free": 100}, tokens_per_minute=100, is_async=True)
    fake.reply("long answer", usage=costguard.Usage(input_tokens=80, output_tokens=40))

    async def main() -> None:
        async with guard.scope(user="u1", tier="free"):
            stream = await ask(client, stream=True)
            async for _ in stream:
                pass

    asyncio.run(main())

    async def again() -> None:
        async with guard.scope(user="u1", tier="free"):
            await ask(client)

    with pytest.raises(RateLimitedError, match="tokens"):
        asyncio.run(again())
    assert len(fake.requests) == 1


def test_async_calls_charge_tokens(make_guard: MakeGuard) -> None:
    """Through an async client, a call's tokens count against the next one."""
    guard, client, _ = make_guard({"free": 100}, tokens_per_minute=10, is_async=True)

    async def main() -> None:
        async with guard.scope(user="u1", tier="free"):
            await ask(client)
            with pytest.raises(RateLimitedError, match="tokens"):
                await ask(client)

    asyncio.run(main())


# -- sharing between layers, threads and processes ------------------------------------------


def test_two_layers_on_one_ledger_share_the_count(make_guard: MakeGuard) -> None:
    """Two guards, each with its own RateLimitLayer on one ledger file, share a user's count."""
    guard_a, client_a, _ = make_guard({"free": 3})
    _, client_b, _ = make_guard({"free": 3})
    with guard_a.scope(user="u1", tier="free"):
        ask(client_a)
        ask(client_b)
        ask(client_a)
        with pytest.raises(RateLimitedError):
            ask(client_b)
        with pytest.raises(RateLimitedError):
            ask(client_a)


def test_limits_with_different_windows_keep_separate_counts(tmp_path: Path, clock: Clock) -> None:
    """A per-minute and a per-day limit on one guard each count every call once."""
    path = tmp_path / "l.db"
    minute = RateLimits(tiers={"free": 2}, per="minute", clock=clock)
    day = RateLimits(tiers={"free": 3}, per="day", clock=clock)
    layers = [RateLimitLayer(minute, path), RateLimitLayer(day, path)]
    with costguard.CostGuardClient(ledger=path, cache=None, layers=layers) as guard:
        client = guard.wrap(FakeProvider().openai())
        with guard.scope(user="u1", tier="free"):
            ask(client)
            ask(client)
            with pytest.raises(RateLimitedError) as per_minute:
                ask(client)
            clock.advance(60)
            ask(client)
            clock.advance(60)
            with pytest.raises(RateLimitedError) as per_day:
                ask(client)
    assert per_minute.value.retry_after == 60
    assert per_day.value.retry_after == 86400 - 120


@settings(max_examples=8, deadline=None)
@given(limit=st.integers(min_value=1, max_value=40))
def test_32_threads_at_once_never_pass_the_limit(
    tmp_path_factory: pytest.TempPathFactory, limit: int
) -> None:
    """32 threads calling at the same moment are admitted exactly min(limit, 32) times."""
    path = tmp_path_factory.mktemp("threads") / "l.db"
    limits = RateLimits(tiers={"free": limit}, clock=lambda: T0)
    fake = FakeProvider()
    with costguard.CostGuardClient(
        ledger=path, cache=None, layers=[RateLimitLayer(limits, path)]
    ) as guard:
        client = guard.wrap(fake.openai())
        start = threading.Barrier(32)
        outcomes: list[str] = []

        def one() -> None:
            with guard.scope(user="u1", tier="free"):
                start.wait()
                try:
                    ask(client)
                    outcomes.append("ok")
                except RateLimitedError:
                    outcomes.append("refused")

        threads = [threading.Thread(target=one) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert outcomes.count("ok") == min(limit, 32) == len(fake.requests)
    assert len(outcomes) == 32


_WORKER = textwrap.dedent(
    """
    import sys

    import costguard
    from costguard._errors import RateLimitedError
    from costguard.layers.ratelimit import RateLimitLayer
    from costguard.spend import RateLimits
    from costguard.testing import FakeProvider

    path, limit, tries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    limits = RateLimits(tiers={"free": limit}, clock=lambda: 1_000_000.0)
    guard = costguard.CostGuardClient(
        ledger=path, cache=None, layers=[RateLimitLayer(limits, path)]
    )
    fake = FakeProvider()
    client = guard.wrap(fake.openai())
    print("ready", flush=True)
    sys.stdin.readline()  # every process starts calling at the same moment
    with guard.scope(user="u1", tier="free"):
        for _ in range(tries):
            try:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            except RateLimitedError:
                pass
    guard.close()
    print(len(fake.requests), flush=True)
    """
)


def test_processes_sharing_a_ledger_admit_exactly_the_limit(tmp_path: Path) -> None:
    """Four processes each trying 8 calls against a limit of 10 get exactly 10 through in all."""
    path = tmp_path / "l.db"
    costguard.Ledger(path).close()  # create and migrate the file once, up front
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), "10", "8"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        sent = [int(proc.communicate(timeout=120)[0].strip()) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert all(proc.returncode == 0 for proc in procs)
    assert sum(sent) == 10


# -- the store as a model -------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=5),
    window=st.sampled_from([1, 10, 60, 3600]),
    steps=st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=40),
)
def test_the_store_admits_exactly_as_a_sliding_window_would(
    limit: int, window: int, steps: list[int]
) -> None:
    """Over any sequence of call times, admissions match a plain sliding-window model."""
    limits = RateLimits(tiers={"free": limit}, per=window)
    bucket = limits.bucket(Scope(user="u", tier="free"))
    store = RateStore(":memory:")
    admitted: list[float] = []
    now = T0
    for step in steps:
        now += step
        in_window = [t for t in admitted if t > now - window]
        refusal = store.try_admit(bucket, now)
        if len(in_window) < limit:
            assert refusal is None
            admitted.append(now)
        else:
            assert refusal is not None
            assert refusal.retry_after == in_window[-limit] + window - now > 0
    store.close()


def test_importing_costguard_and_the_rate_limits_does_not_load_asyncio() -> None:
    """The layer imports asyncio only when an async call runs."""
    code = (
        "import sys, costguard, costguard.spend, costguard.layers.ratelimit; "
        "print('asyncio' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"
