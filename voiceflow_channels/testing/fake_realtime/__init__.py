"""A fake OpenAI Realtime server (GA interface) for tests and benchmarks, on 127.0.0.1.

Framework-free (asyncio, websockets and the `openai` SDK's own event models), so it needs the
`openai` extra: `voiceflow_channels.testing` does not import it.
"""
