"""The graphs served by ``langgraph dev`` (the server LangGraph Studio talks to), driven by the SDK.

Real parts: the ``langgraph dev`` in-memory server started on a free loopback port, offline, with
``--no-reload``, and the ``langgraph_sdk`` HTTP client. The one double is the model: the server
loads ``tests/studio/langgraph.json``, whose graphs module registers the scripted chat model of
tests/scripted.py as "scripted" inside the server process (a real model would be slow or need a
network); the runs pick it through their context, as a Studio user picks a model. The project's own
``langgraph.json`` is started too, to check that it serves the three graphs with their forms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from langgraph_sdk import get_client

from pdr.graphs.long_cot import graph as long_cot_graph
from pdr.graphs.pdr import graph as pdr_graph
from pdr.graphs.sr import graph as sr_graph
from tests.scripted import ScriptedChatModel
from tests.studio.server import ROOT, DevServer, dev_server

pytestmark = pytest.mark.slow

PROBLEM = "What is 17 * 23?"
FINAL_TEXT = "17 * 23 = 391 . Answer: 391"
SUMMARY = "Notes: the attempts agree on 391 ; check 17 * 23 ."
OUTPUT_KEYS = [
    "final_text",
    "answer",
    "b_seq",
    "b_tot",
    "b_tot_per_draft",
    "calls",
    "stopped",
    "truncated",
]


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``langgraph dev`` serving the three graphs with the scripted model registered."""
    config = ROOT / "tests" / "studio" / "langgraph.json"
    with dev_server(config, tmp_path_factory.mktemp("studio-scripted")) as server:
        yield server


@pytest.fixture(scope="module")
def project_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """``langgraph dev`` on the project's own langgraph.json, as a user starts it."""
    with dev_server(ROOT / "langgraph.json", tmp_path_factory.mktemp("studio-project")) as server:
        yield server


@dataclass(frozen=True)
class ServerRun:
    """What one run on the server produced, as a Studio user sees it."""

    events: list[dict[str, Any]]
    updates: Counter[str]
    values: dict[str, Any]
    history: list[dict[str, Any]]


async def run_on_server(server: DevServer, graph_id: str, context: dict[str, Any]) -> ServerRun:
    """One run on a new thread: custom events, updates per node, final values, state history."""
    client = get_client(url=server.url)
    thread = await client.threads.create()
    events: list[dict[str, Any]] = []
    updates: Counter[str] = Counter()
    async for part in client.runs.stream(
        thread["thread_id"],
        graph_id,
        input={"problem": PROBLEM},
        context=context,
        stream_mode=["updates", "custom"],
    ):
        if part.event == "custom":
            events.append(part.data)
        elif part.event == "updates":
            updates.update(part.data.keys())
        elif part.event == "error":
            pytest.fail(f"run of {graph_id} failed: {part.data}\n{server.log()[-4000:]}")
    state = await client.threads.get_state(thread["thread_id"])
    history = await client.threads.get_history(thread["thread_id"], limit=100)
    return ServerRun(
        events, updates, cast(dict[str, Any], state["values"]), [dict(h) for h in history]
    )


def event_counts(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(event["event"] for event in events)


def ledger(calls: list[dict[str, Any]]) -> list[tuple[str, int, int, int, int]]:
    """The token columns of a ledger, in a stable order (branches finish in any order)."""
    return sorted(
        (c["role"], c["round"], c["index"], c["input_tokens"], c["output_tokens"]) for c in calls
    )


async def in_process(graph: Any, context: Any) -> dict[str, Any]:
    """The same run in this process, for comparing ledgers token for token."""
    result: dict[str, Any] = await graph.ainvoke({"problem": PROBLEM}, context=context)
    return result


async def test_pdr_run_streams_progress_and_keeps_history(
    scripted_server: DevServer, scripted: ScriptedChatModel
) -> None:
    from pdr.graphs.context import PDRContext

    schedule = [3, 2, 1]
    context = {"model": "scripted", "schedule": schedule, "kappa": 64}
    run = await run_on_server(scripted_server, "pdr", context)
    events, updates, values, history = run.events, run.updates, run.values, run.history

    counts = event_counts(events)
    assert counts["draft_finished"] == sum(schedule) - 1 == 5
    assert counts["round_started"] == len(schedule) - 1 == 2
    assert counts["workspace_written"] == len(schedule) - 1 == 2
    assert counts["answer"] == 1
    assert counts["call_finished"] == 8  # every call's ledger record, on the stream
    assert counts["call_started"] == 8  # announced before its request is sent
    assert [e["round"] for e in events if e["event"] == "round_started"] == [1, 2]
    assert [e["drafts"] for e in events if e["event"] == "round_started"] == [3, 2]
    assert updates == Counter({"start": 1, "draft": 5, "distill": 2, "refine": 1})

    assert values["answer"] == "391"
    assert values["final_text"] == FINAL_TEXT
    assert values["round"] == 3
    calls = values["calls"]
    assert Counter(c["role"] for c in calls) == Counter({"draft": 5, "distill": 2, "refine": 1})
    assert values["b_tot"] == sum(c["input_tokens"] + c["output_tokens"] for c in calls)
    # By hand for [3, 2, 1]: the longest draft of each round, each summary, the refine call.
    cost = [(c["role"], c["round"], c["input_tokens"] + c["output_tokens"]) for c in calls]

    def most(role: str, round_: int) -> int:
        return max(tokens for r, n, tokens in cost if (r, n) == (role, round_))

    assert values["b_seq"] == (
        most("draft", 1) + most("distill", 1) + most("draft", 2) + most("distill", 2)
    ) + most("refine", 3)
    answer_event = next(e for e in events if e["event"] == "answer")
    assert (answer_event["b_seq"], answer_event["b_tot"]) == (values["b_seq"], values["b_tot"])

    # The server's run and an in-process run of the same graph write the same ledger.
    local = await in_process(pdr_graph, PDRContext(model="scripted", schedule=schedule, kappa=64))
    assert ledger(calls) == ledger(local["calls"])
    assert (values["b_seq"], values["b_tot"]) == (local["b_seq"], local["b_tot"])

    # What Studio's thread view shows, checkpoint by checkpoint (newest first): input, start,
    # then per drafting round its drafts and distill, then refine and the final state.
    assert len(history) == 2 * len(schedule) + 2 == 8
    assert [h["next"] for h in history] == [
        [],
        ["refine"],
        ["distill"],
        ["draft", "draft"],
        ["distill"],
        ["draft", "draft", "draft"],
        ["start"],
        ["__start__"],
    ]
    before_distill_1 = history[4]["values"]
    assert [d["index"] for d in before_distill_1["drafts"]] == [0, 1, 2]
    # The scripted drafts of round 1 disagree: 391, 400, 391.
    assert [d["answer"] for d in before_distill_1["drafts"]] == ["391", "400", "391"]
    after_distill_1 = history[3]["values"]
    assert after_distill_1["round"] == 2
    assert after_distill_1["drafts"] == []
    assert after_distill_1["workspaces"] == [SUMMARY]
    assert history[0]["metadata"]["graph_id"] == "pdr"
    # The server's blockbuster found no blocking call (time.sleep, sync sockets...) in the nodes.
    assert "BlockingError" not in scripted_server.log()


async def test_sr_run_on_server(scripted_server: DevServer) -> None:
    rounds = 3
    context = {"model": "scripted", "rounds": rounds, "kappa": 64}
    run = await run_on_server(scripted_server, "sr", context)
    events, updates, values, history = run.events, run.updates, run.values, run.history

    counts = event_counts(events)
    assert counts["draft_finished"] == rounds - 1 == 2
    assert counts["workspace_written"] == 2
    assert counts["answer"] == 1
    assert updates == Counter({"start": 1, "draft": 2, "distill": 2, "refine": 1})
    assert values["answer"] == "391"
    calls = values["calls"]
    assert Counter(c["role"] for c in calls) == Counter({"draft": 2, "refine": 1})
    # SR: every call on the critical path, one after another.
    assert (
        values["b_tot"]
        == values["b_seq"]
        == sum(c["input_tokens"] + c["output_tokens"] for c in calls)
    )
    # SR's calls all sit on the critical path: B_seq equals B_tot.
    assert values["b_seq"] == values["b_tot"]
    assert len(history) == 2 * rounds + 2 == 8
    # The workspace of round 2 is round 1's answer itself.
    assert FINAL_TEXT in history[3]["values"]["workspaces"][0]


async def test_long_cot_run_on_server(scripted_server: DevServer) -> None:
    context = {"model": "scripted", "max_tokens": 300}
    run = await run_on_server(scripted_server, "long_cot", context)
    events, updates, values, history = run.events, run.updates, run.values, run.history

    assert event_counts(events) == Counter(
        {"round_started": 1, "call_started": 1, "call_finished": 1, "answer": 1}
    )
    assert updates == Counter({"start": 1, "long_cot": 1})
    assert values["answer"] == "391"
    [call] = values["calls"]
    assert call["role"] == "long_cot"
    assert values["b_seq"] == values["b_tot"] == call["input_tokens"] + call["output_tokens"]
    assert [h["next"] for h in history] == [[], ["long_cot"], ["start"], ["__start__"]]


async def test_bad_context_fails_the_run_with_the_field_name(scripted_server: DevServer) -> None:
    client = get_client(url=scripted_server.url)
    thread = await client.threads.create()
    errors = []
    bad_context: dict[str, Any] = {"model": "scripted", "schedule": [4, 2]}
    async for part in client.runs.stream(
        thread["thread_id"],
        "pdr",
        input={"problem": PROBLEM},
        context=bad_context,
        stream_mode="updates",
    ):
        if part.event == "error":
            errors.append(part.data)
    assert len(errors) == 1
    assert "schedule: the last round is the refine step and must be 1" in str(errors[0])


async def test_project_langgraph_json_serves_three_graphs_with_forms(
    project_server: DevServer,
) -> None:
    client = get_client(url=project_server.url)
    assistants = await client.assistants.search()
    by_graph = {a["graph_id"]: a for a in assistants}
    assert sorted(by_graph) == ["long_cot", "pdr", "sr"]

    extra = {"pdr": {"kappa", "schedule", "k"}, "sr": {"kappa", "rounds"}, "long_cot": set()}
    for graph_id, own_fields in extra.items():
        schemas = await client.assistants.get_schemas(by_graph[graph_id]["assistant_id"])
        input_schema, output_schema = schemas["input_schema"], schemas["output_schema"]
        context_schema = schemas["context_schema"]
        assert input_schema is not None and output_schema is not None
        assert context_schema is not None
        # The small form Studio shows: the problem only.
        assert input_schema["properties"] == {"problem": {"title": "Problem", "type": "string"}}
        assert input_schema["required"] == ["problem"]
        assert list(output_schema["properties"]) == OUTPUT_KEYS
        # The run parameters Studio shows as the assistant's context, with their descriptions.
        context_fields = context_schema["properties"]
        assert {"model", "temperature", "max_tokens", "seed"} | own_fields <= set(context_fields)
        assert all("description" in spec for spec in context_fields.values())

    graph = await client.assistants.get_graph(by_graph["pdr"]["assistant_id"])
    assert sorted(node["id"] for node in graph["nodes"]) == sorted(
        ["__start__", "start", "draft", "distill", "refine", "__end__"]
    )
    assert "BlockingError" not in project_server.log()


def test_served_graphs_carry_no_checkpointer() -> None:
    # langgraph dev refuses to start when a served graph brings its own checkpointer.
    for graph in (pdr_graph, sr_graph, long_cot_graph):
        assert graph.checkpointer is None
