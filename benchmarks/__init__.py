"""pdr's benchmarks: ``python -m benchmarks`` (see the README's Benchmarks section).

Every figure is a ratio against a baseline measured in the same run, repeats interleaved. The
model is a latency-simulating OpenAI-compatible server on loopback (``sim_server``); the baseline
of orchestration is a plain asyncio loop making the same calls (``floor``).
"""
