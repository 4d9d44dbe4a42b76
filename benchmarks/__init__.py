"""Throughput benchmarks of the Twilio stream consumer: `python -m benchmarks.stream`."""
