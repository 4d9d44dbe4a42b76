"""The example's phone assistant, served when OPENAI_API_KEY is set: a short persona, one tool
that takes DEMO_TOOL_MS (so the chime is heard while it runs), and end_call."""

from __future__ import annotations

import asyncio

from django.conf import settings

from voiceflow_channels.realtime import RealtimeAssistant


async def check_order_status(order_id: str) -> str:
    """Look up the status of the caller's order.

    Args:
        order_id: The order number, as the caller said it.
    """
    await asyncio.sleep(settings.DEMO_TOOL_MS / 1000)  # a slow backend, so the chime plays
    return f"Order {order_id} shipped yesterday and arrives on Friday."


class ShopAssistant(RealtimeAssistant):
    instructions = (
        "You answer the phone for a small online shop. Be brief and friendly. You can check "
        "an order's status; ask for the order number first. When the caller is done, say "
        "goodbye and end the call."
    )
    greeting = "Thanks for calling the shop. How can I help?"
    tools = (check_order_status,)
    end_call = True
