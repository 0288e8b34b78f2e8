"""Wrapping keeps the SDK's shape: a copy of the client whose guarded methods run the chain.

``wrap(client)`` makes ``client.copy()`` (same class, same HTTP connection pool, same options),
then sets, on that copy's own resource objects, instance attributes that shadow the guarded
methods. Nothing else changes: ``type(wrapped) is type(client)``, every other attribute and
endpoint is the SDK's own, and the user's original client is untouched. ``copy()`` and
``with_options()`` on the wrapped client return wrapped copies. With a retry layer, guarded
methods send through a second copy with ``max_retries=0``: costguard owns retries then.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from ._call import ClientInfo
from ._errors import ConfigurationError
from ._validate import check_params
from .providers import Operation, operations_for

if TYPE_CHECKING:
    from ._client import CostGuardClient

__all__ = ["client_info", "wrap_client"]

_SUPPORTED = (
    ("openai", "OpenAI", False),
    ("openai", "AsyncOpenAI", True),
    ("anthropic", "Anthropic", False),
    ("anthropic", "AsyncAnthropic", True),
)


def _kind(client: object) -> tuple[str, bool]:
    # An SDK that is not imported cannot have made this client, so `import costguard` never
    # imports either SDK.
    for provider, class_name, is_async in _SUPPORTED:
        sdk = sys.modules.get(provider)
        if sdk is not None and isinstance(client, getattr(sdk, class_name)):
            return provider, is_async
    name = f"{type(client).__module__}.{type(client).__qualname__}"
    raise ConfigurationError(
        f"cannot wrap a {name}: costguard guards openai.OpenAI, openai.AsyncOpenAI, "
        "anthropic.Anthropic and anthropic.AsyncAnthropic clients (and their subclasses)"
    )


def wrap_client(guard: CostGuardClient, client: Any) -> Any:
    provider, is_async = _kind(client)
    wrapped = type(client).copy(client)  # the class's own copy: never an earlier guard's
    _install(guard, wrapped, provider, is_async)
    return wrapped


def client_info(guard: CostGuardClient, client: Any, provider: str, is_async: bool) -> ClientInfo:
    """What the layers may know of ``client``: never its API key, only the ledger's keyed
    hash and last four characters, and the cache partition derived from it."""
    api_key = getattr(client, "api_key", None)
    key_hash = last4 = partition = None
    if isinstance(api_key, str):
        key_hash, last4 = guard.ledger.key_fingerprint(api_key)
        if guard.cache is not None:
            partition = guard.cache.partition_for_key(api_key)
    return ClientInfo(
        provider,
        str(client.base_url),
        is_async,
        key_hash,
        last4,
        client,
        partition,
        getattr(client, "max_retries", None),
    )


def _install(guard: CostGuardClient, client: Any, provider: str, is_async: bool) -> None:
    info = client_info(guard, client, provider, is_async)
    # When costguard owns retries, guarded calls go through a twin of the client that never
    # retries on its own (attempts would multiply); the client itself keeps its max_retries
    # for every endpoint costguard does not guard.
    sender = type(client).copy(client, max_retries=0) if guard.owns_retries else client
    for op in operations_for(provider):
        resource, twin = client, sender
        for attr in op.path:
            resource, twin = getattr(resource, attr), getattr(twin, attr)
        original = getattr(type(twin), op.method).__get__(twin)
        setattr(resource, op.method, _guarded(guard, op, original, info, is_async))
        guard._senders[(provider, is_async, op.name)] = (op, original, info)

    sdk_copy = type(client).copy

    @functools.wraps(sdk_copy)
    def copy(*args: Any, **kwargs: Any) -> Any:
        fresh = sdk_copy(client, *args, **kwargs)
        _install(guard, fresh, provider, is_async)
        return fresh

    client.copy = client.with_options = copy


def _required(original: Callable[..., Any]) -> frozenset[str]:
    return frozenset(
        name
        for name, p in inspect.signature(original).parameters.items()
        if p.default is inspect.Parameter.empty and p.kind is inspect.Parameter.KEYWORD_ONLY
    )


def _guarded(
    guard: CostGuardClient,
    op: Operation,
    original: Callable[..., Any],
    info: ClientInfo,
    is_async: bool,
) -> Callable[..., Any]:
    required = _required(original)
    if op.always_streams:
        factory = _astream_helper if is_async else _stream_helper
        guarded = factory(guard, op, original, info, required)
    elif is_async:
        arun = guard._arun

        async def guarded(**params: Any) -> Any:
            check_params(op, params, required)
            return await arun(op, original, info, params)

    else:
        run = guard._run

        def guarded(**params: Any) -> Any:
            check_params(op, params, required)
            return run(op, original, info, params)

    functools.update_wrapper(guarded, original)
    guarded.__signature__ = inspect.signature(original)  # type: ignore[attr-defined]  # read by inspect
    return guarded


# messages.stream() returns a MessageStreamManager that sends nothing until it is entered. The
# guarded version returns the SDK's own manager, with its request swapped for one that runs the
# chain when entered; the chain's terminal asks a fresh SDK manager for its raw stream.
_SYNC_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_REQUEST = "_AsyncMessageStreamManager__api_request"


def _stream_helper(
    guard: CostGuardClient,
    op: Operation,
    original: Callable[..., Any],
    info: ClientInfo,
    required: frozenset[str],
) -> Callable[..., Any]:
    def send(**params: Any) -> Any:
        return getattr(original(**params), _SYNC_REQUEST)()

    def guarded(**params: Any) -> Any:
        check_params(op, params, required)
        manager = original(**params)  # the SDK validates its arguments here
        setattr(manager, _SYNC_REQUEST, lambda: guard._run(op, send, info, params))
        return manager

    return guarded


class _Deferred:
    """An awaitable that starts its coroutine only when awaited (never an un-awaited one)."""

    __slots__ = ("_start",)

    def __init__(self, start: Callable[[], Awaitable[Any]]) -> None:
        self._start = start

    def __await__(self) -> Generator[Any, None, Any]:
        return self._start().__await__()


def _astream_helper(
    guard: CostGuardClient,
    op: Operation,
    original: Callable[..., Any],
    info: ClientInfo,
    required: frozenset[str],
) -> Callable[..., Any]:
    async def send(**params: Any) -> Any:
        return await getattr(original(**params), _ASYNC_REQUEST)

    def guarded(**params: Any) -> Any:
        check_params(op, params, required)
        manager = original(**params)
        getattr(manager, _ASYNC_REQUEST).close()  # the SDK's own request coroutine, unused
        setattr(manager, _ASYNC_REQUEST, _Deferred(lambda: guard._arun(op, send, info, params)))
        return manager

    return guarded
