"""Prompts of the draft step (PDR's parallel drafts, SR's improved answers)."""

SYSTEM = (
    "You are a careful mathematician. Solve the problem step by step in plain text. "
    "Do not write code. End with a line of the form 'Answer: <final answer>'."
)

FIRST = "Problem:\n{problem}"

WITH_WORKSPACE = (
    "Problem:\n{problem}\n\n"
    "Notes from earlier attempts (they may contain mistakes; check them):\n{workspace}\n\n"
    "Write a complete, improved solution. Reuse what is right, fix what is wrong."
)
