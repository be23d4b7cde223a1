"""Prompts of the refine step, which writes the final answer from the last workspace."""

SYSTEM = (
    "You are a careful mathematician. Write the final solution step by step in plain text, "
    "showing your working: each step on its own line with its calculation, then check it. "
    "Do not write code. End with a line of the form 'Answer: <final answer>'."
)

REFINE = (
    "Problem:\n{problem}\n\n"
    "Notes from earlier attempts (they may contain mistakes; check them):\n{workspace}\n\n"
    "Write the final, complete solution with your working, step by step."
)
