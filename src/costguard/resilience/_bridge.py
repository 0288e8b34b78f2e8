"""Cross-provider fallbacks: an OpenAI chat call answered by Claude, or the reverse.

The fallback layer asks the bridge for a call to another provider's model. The bridge
translates the request (:mod:`._translate`) and sends it through the other provider's client
that this guard has wrapped, as that provider's own operation. So every layer inside sees a
genuine Anthropic (or OpenAI) call: the cache keys it correctly, the budget prices its worst
case at that model's rates, and the ledger prices the answer from that provider's usage. Only
on the way out is the answer translated back into the type the caller expects (a
``ChatCompletion`` stays a ``ChatCompletion``).

Skipped, with the reason recorded in the fallback's attempts: streamed calls, operations
other than chat, a provider this guard has wrapped no client of (sync or async to match), and
requests using something the other side cannot express (``Untranslatable``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._call import Call
from ..pricing import PriceTable

if TYPE_CHECKING:
    from .._client import CostGuardClient

__all__ = ["Bridge"]

_COUNTERPART = {
    ("openai", "chat.completions.create"): ("anthropic", "messages.create"),
    ("anthropic", "messages.create"): ("openai", "chat.completions.create"),
}


class Bridge:
    def __init__(self, guard: CostGuardClient, prices: PriceTable) -> None:
        self.guard = guard
        self.prices = prices

    def __call__(self, call: Call, model: str) -> Call | str:
        """The call to send to ``model`` of another provider, or why it cannot be."""
        from ._translate import Untranslatable, chat_to_messages, messages_to_chat

        if call.stream:
            return "streamed calls are not translated across providers"
        target = _COUNTERPART.get((call.provider, call.operation.name))
        if target is None:
            return f"{call.operation.name} is not translated across providers (chat only)"
        provider, operation = target
        sender = self.guard._senders.get((provider, call.client.is_async, operation))
        if sender is None:
            kind = "an async" if call.client.is_async else "a sync"
            return f"this guard has wrapped no {provider} client ({kind} one is needed)"
        op, send, info = sender
        try:
            if provider == "anthropic":
                price = self.prices.get(model)
                limit = price.max_output_tokens if price is not None else None
                params = chat_to_messages(call.params, model=model, default_max_tokens=limit)
            else:
                params = messages_to_chat(call.params, model=model)
        except Untranslatable as reason:
            return f"cannot translate for {provider}: {reason}"
        return call.replace(operation=op, params=params, send=send, client=info)

    @staticmethod
    def back(call: Call, attempt: Call, answer: Any) -> Any:
        """``answer`` (from ``attempt``'s provider) as the SDK object ``call`` expects."""
        from ._translate import chat_to_message, message_to_chat

        requested = call.model or ""
        if call.provider == "openai":
            return message_to_chat(answer, requested_model=requested)
        return chat_to_message(answer, requested_model=requested)
