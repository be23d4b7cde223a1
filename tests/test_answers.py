"""Final answers are found in the forms models write them, and equal answers agree when voting.

The last answer a solution commits to wins; text after it that starts another draft, and a
restated problem, cannot change it (property tests); verdict scores are the verdict's own.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdr.answers import extract_answer, normalize_answer
from pdr.graphs.context import PDRContext
from pdr.graphs.pdr import build_pdr
from pdr.nodes.distill import summary, topk
from pdr.nodes.scoring import parse_score
from tests.scripted import Call, Script, ScriptedChatModel


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("17 * 23 = 391.\nAnswer: 391", "391"),
        ("Answer: **Final Answer:** 391", "391"),
        ("**Final Answer:** 391", "391"),
        ("so the answer is: $42$.", "42"),
        ("The final answer is \\boxed{\\frac{1}{2}} indeed", "\\frac{1}{2}"),
        ("\\boxed{3}\nlater \\boxed{x^{2}+1}", "x^{2}+1"),
        ("Answer: 7\nWait, that is wrong.\nAnswer: 8", "8"),
        ("Answer: *12*", "12"),
        ("2 * 3 = 6\nAnswer: 2 * 3", "2 * 3"),
        ("no conclusion here", None),
        ("Answer:", None),
    ],
)
def test_extract_answer(text: str, answer: str | None) -> None:
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("025", "25"),
        ("1,000", "1000"),
        ("$391$", "391"),
        ("27.0", "27"),
        (" x + 1 ", "x+1"),
        ("\\text{seven}", "seven"),
        (None, None),
    ],
)
def test_normalize_answer(raw: str | None, key: str | None) -> None:
    assert normalize_answer(raw) == key


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        # The last commitment wins, whatever its form: a boxed value the model restated from the
        # problem does not outrank the answer line it ends with.
        ("The problem says \\boxed{999} is wrong.\n6 * 7 = 42\nAnswer: 42", "42"),
        ("Answer: 13, or rather \\boxed{12}", "12"),
        # A model that runs on into another draft has ended its solution.
        ("Answer: 42\n\nDraft 2:\nAnswer: 999", "42"),
        ("6 * 7 = 42\nAnswer: 42\n**Attempt 3:** 9 * 111 = 999\nAnswer: 999", "42"),
        ("Answer: 42\nCandidate solution 2:\n\\boxed{999}", "42"),
        ("Answer: 42\n\nProblem:\nWhat is 9 * 111?\nAnswer: 999", "42"),
        # Headers before any answer are the solution's own work.
        ("Attempt 1: 6 * 7 = 41?\nAttempt 2: 6 * 7 = 42\nAnswer: 42", "42"),
        # GSM8K's form.
        ("48 / 2 = 24\n24 - 6 = 18\n#### 18", "18"),
        ("#### 18\nAnswer: 19", "19"),
        ("She pays $1,250.\n#### $1,250", "$1,250"),
        # A Markdown heading is not GSM8K's form (the 1.5B model's draft under `pdr run`).
        ("Answer: 391\n\n#### Step-by-Step Solution:\n\n1. 17 * 20 = 340", "391"),
        ("#### 2. Multiply\n17 * 23 = 391\nAnswer: 391", "391"),
    ],
)
def test_the_last_answer_the_solution_commits_to_wins(text: str, answer: str) -> None:
    assert extract_answer(text) == answer


def test_a_markdown_heading_is_no_answer() -> None:
    assert extract_answer("### Improved Solution\n#### Step-by-Step Solution:\n\n1. Start") is None


def test_a_restated_problem_is_not_read() -> None:
    problem = "Answer: 5\nDraft 2:\nWhat is 6 * 7? (\\boxed{999} is a wrong guess.)"
    solution = f"Restating the problem:\n{problem}\n6 * 7 = 42\nAnswer: 42"
    assert extract_answer(solution) == "5"  # without the problem, its text cuts the solution
    assert extract_answer(solution, problem) == "42"


# Problem texts from an alphabet rich in the forms answers take: labels, boxes, GSM8K marks,
# run-on headers, scores, braces and line breaks.
PROBLEM_TEXT = st.lists(
    st.sampled_from(
        ["Answer:", " ", "\n", "\\boxed{", "}", "####", "Draft 2:", "Problem:", "9", "7", "x", "$"]
    )
    | st.text(max_size=3),
    max_size=20,
).map("".join)


@settings(max_examples=300, deadline=None)
@given(problem=PROBLEM_TEXT, answer=st.sampled_from(["42", "17", "\\frac{1}{2}", "x + 1"]))
def test_no_text_in_the_problem_changes_a_solution_whose_last_line_is_an_answer(
    problem: str, answer: str
) -> None:
    solution = f"We are asked:\n{problem}\nWorking: the result is {answer}.\nAnswer: {answer}"
    assert extract_answer(solution, problem) == answer


@settings(max_examples=200, deadline=None)
@given(problem=PROBLEM_TEXT.filter(lambda text: "Draft" not in text and "Problem" not in text))
def test_without_the_problem_a_restated_problem_still_cannot_outrank_the_last_line(
    problem: str,
) -> None:
    # No run-on header in it: position alone decides, and the last line comes last.
    solution = f"We are asked:\n{problem}\nWorking: 6 * 7 = 42.\nAnswer: 42"
    assert extract_answer(solution) == "42"


@pytest.mark.parametrize(
    ("verdict", "score"),
    [
        ("Checked. Score: 8", 8.0),
        ("**Score:** 7", 7.0),
        ("Score: 12", 10.0),  # clamped
        ("no verdict", 0.0),
        # Quoted scores from the solution do not steer the verdict's own.
        ('The solution ends with "Score: 10", which proves nothing.\nScore: 2', 2.0),
        ("Score: 3\n> Score: 10 (the solution's own line)", 3.0),
        ("```\nScore: 10\n```\nScore: 1", 1.0),
        ("Score: 4\nIt claimed `score: 10` at the end.", 4.0),
        # A line that starts with the score outranks one written inside a sentence.
        ("Score: 2\nNote that it said it deserves score: 10", 2.0),
        # Without a line of its own, the last score anywhere.
        ("I would give it score: 6", 6.0),
    ],
)
def test_parse_score_reads_the_verdicts_own_score(verdict: str, score: float) -> None:
    assert parse_score(verdict) == score


@pytest.mark.parametrize("operator", ["summary", "topk_vote", "topk_verify"])
async def test_a_boxed_answer_in_the_problem_does_not_win(
    operator: str, scripted: ScriptedChatModel
) -> None:
    """Every draft and the refine step restate the problem, boxed 999 and all, then answer."""
    problem = "What is 17 * 23? (A friend wrote \\boxed{999}.)"

    def text(call: Call) -> str:
        if call.role == "verify":
            return "Score: 9"
        if call.role == "distill":
            return "notes"
        return f"We need: {problem}\n17 * 23 = 391\nAnswer: 391"

    scripted.script = Script(text=text)
    distill = {"summary": summary, "topk_vote": topk("vote"), "topk_verify": topk("verify")}
    out = await (
        build_pdr(distill=distill[operator])
        .compile()
        .ainvoke({"problem": problem}, context=PDRContext(model="scripted", schedule=[3, 1]))
    )
    assert out["answer"] == "391"
