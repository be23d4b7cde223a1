"""Prompts of the draft step (PDR's parallel drafts, SR's improved answers).

A round-1 draft is the same task as the long chain-of-thought call, so it asks for the working at
least as firmly: a small model told only to end with an answer line writes that line and nothing
else.
"""

SYSTEM = (
    "You are a careful mathematician. Think step by step and show your working: write each step "
    "on its own line with its calculation, then check your work. Do not write code. Do not give "
    "the answer before the working. End with a line of the form 'Answer: <final answer>'."
)

FIRST = "Problem:\n{problem}"

WITH_WORKSPACE = (
    "Problem:\n{problem}\n\n"
    "Notes from earlier attempts (they may contain mistakes; check them):\n{workspace}\n\n"
    "Write a complete, improved solution with your working, step by step. Reuse what is right, "
    "fix what is wrong."
)

# A candidate planted among round 1's drafts by the verification experiment (`pdr eval
# --inject`): the same short solution whether its answer is the gold one or a wrong one.
PLANTED = "Working through each step of the problem gives {answer}.\nAnswer: {answer}"
