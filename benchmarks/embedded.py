"""The embedded model, where users really wait: tokens/s of pdr's llama.cpp pool against the limit.

Run as ``python -m benchmarks.embedded --model embedded --drafts 4 --tokens 32 --repeats 2``
(a process of its own: it loads the model three ways). For each number of drafts M it writes the
draft prompt's drafts three ways, interleaved:

- one request on one ``Llama`` with every core's thread ("single": the machine's limit for one
  request; its tokens/s is the baseline of the ratios);
- pdr's pool (``pdr.models.llama.LlamaBackend`` with its defaults), the M calls at once, as a
  round of drafts runs;
- llama.cpp's own batched decoding of the M drafts in one context (``benchmarks.llama_batch``),
  with every core's thread and with the pool's thread budget.

Tokens/s counts the output tokens each way reports (exact per draft), over the wall time of the
whole round (prompt evaluation included). On a machine whose cores other jobs use, a call with
as many threads as cores crawls (llama.cpp's threads spin-wait for each other), so the run has a
time budget: no new repeat starts once it is spent. Batched decoding would replace the pool only
if it gave at least 1.5x the pool's throughput at every M >= 4.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

ADOPT_AT = 1.5


def measure(
    model: str, drafts: list[int], tokens: int, repeats: int, budget_s: float
) -> dict[str, Any]:
    import llama_cpp

    from benchmarks.llama_batch import BatchedDecoder, Request
    from benchmarks.measure import Series, interleaved, ratio
    from pdr.graphs.context import PDRContext
    from pdr.models import SamplingOptions, get_backend
    from pdr.models.llama import LlamaBackend, default_threads
    from pdr.nodes.draft import draft_messages

    cores = os.cpu_count() or 1
    pool = get_backend(model)
    assert isinstance(pool, LlamaBackend)
    path = str(pool.model_path)
    messages = draft_messages("What is 17 * 23?", "", PDRContext(model=model))
    single = llama_cpp.Llama(
        model_path=path, n_ctx=1024, n_threads=cores, n_threads_batch=cores, verbose=False
    )
    widest = max(drafts)
    n_ctx = 1024 + widest * (tokens + 8)
    batched = {
        f"batched, {threads} thread{'s' if threads > 1 else ''}": BatchedDecoder(
            single, widest, n_ctx, threads
        )
        for threads in sorted({cores, pool.threads})
    }
    loop = asyncio.new_event_loop()

    def run_single(m: int, cap: int = tokens) -> int:
        reply: Any = single.create_chat_completion(
            messages=messages,  # type: ignore[arg-type]
            max_tokens=cap,
            temperature=0.7,
            seed=m,
        )
        return int(reply["usage"]["completion_tokens"])

    def run_pool(m: int, cap: int = tokens) -> int:
        async def round_() -> int:
            options = [SamplingOptions(max_tokens=cap, temperature=0.7, seed=s) for s in range(m)]
            done = await asyncio.gather(*(pool.generate(messages, o) for o in options))
            return sum(g.output_tokens for g in done)

        return loop.run_until_complete(round_())

    def batched_run(decoder: BatchedDecoder) -> Any:
        def run(m: int, cap: int = tokens) -> int:
            requests = [
                Request(list(messages), cap, 0.7, seed)  # type: ignore[arg-type]
                for seed in range(m)
            ]
            return sum(d.output_tokens for d in decoder.generate(requests))

        return run

    ways = {f"single, {cores} threads": run_single, "pdr pool": run_pool}
    ways.update({name: batched_run(decoder) for name, decoder in batched.items()})
    results: dict[str, Any] = {}
    deadline = time.monotonic() + budget_s
    for m in drafts:
        for way in ways.values():
            way(min(m, 2), 2)  # warm-up: loads and the prompt's first evaluation
        rates = {name: Series() for name in ways}
        for repeat, name in interleaved(repeats, ways):
            if (
                repeat > 0
                and time.monotonic() > deadline
                and all(len(series.values) == repeat for series in rates.values())
            ):
                break  # a whole repeat is done and the time budget is spent
            start = time.monotonic()
            made = ways[name](m)
            rates[name].add(made / (time.monotonic() - start))
        baseline = rates[f"single, {cores} threads"]
        results[str(m)] = {
            "tokens_per_s": {name: series.summary() for name, series in rates.items()},
            "over_single": {name: ratio(series, baseline) for name, series in rates.items()},
            "batched_over_pool": {name: ratio(rates[name], rates["pdr pool"]) for name in batched},
        }
    for decoder in batched.values():
        decoder.close()
    pool_wins = all(
        (r["batched_over_pool"][name]["median"] or 0) < ADOPT_AT
        for m, r in results.items()
        if int(m) >= 4
        for name in batched
    )
    return {
        "model": model,
        "model_file": os.path.basename(path),
        "tokens_per_draft": tokens,
        "pool": {
            "instances": pool.instances,
            "threads": pool.threads,
            "default_threads": default_threads(),
        },
        "cores": cores,
        "repeats_asked": repeats,
        "budget_s": budget_s,
        "by_drafts": results,
        "adopt_batched": not pool_wins,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--drafts", default="4")
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--budget-s", type=float, default=180.0, help="no new repeat starts after this many seconds"
    )
    args = parser.parse_args()
    drafts = [int(m) for m in args.drafts.split(",")]
    result = measure(args.model, drafts, args.tokens, args.repeats, args.budget_s)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
