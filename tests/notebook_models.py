"""The fast stand-in model CI runs the notebooks with: importing this module registers "scripted".

A notebook kernel is a separate process and cannot see a model that pytest registered, so the
notebook imports the module named by ``PDR_NOTEBOOK_MODELS_MODULE`` (this one, in CI) before it
runs anything. The stand-in is the scripted chat model of tests/scripted.py (a double: a real
model would make the notebook take minutes). It multiplies the two factors of a "What is A * B?"
problem, except that the one-call baseline (long CoT) and the first draft of every PDR/SR round
slip on odd first factors, so the notebook's accuracy-versus-budget plot has something to show.
"""

from __future__ import annotations

from pdr.models import register_model
from tests.scripted import Call, Script, ScriptedChatModel, problem_numbers


def stand_in_answer(call: Call) -> str:
    """The product of the problem's factors, off by 10 where the module docstring says."""
    factors = problem_numbers(call.prompt)
    if factors is None:
        return "0"
    first, second = factors
    product = first * second
    slips = call.role == "long_cot" or (call.role == "draft" and call.index == 0)
    return str(product + 10 if slips and first % 2 == 1 else product)


register_model("scripted", ScriptedChatModel(script=Script(answer=stand_in_answer)))
