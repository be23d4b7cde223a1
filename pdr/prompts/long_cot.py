"""Prompt of the long chain-of-thought baseline."""

SYSTEM = (
    "You are a careful mathematician. Think step by step, check your work, and take as long as "
    "you need. Do not write code. End with a line of the form 'Answer: <final answer>'."
)

PROBLEM = "Problem:\n{problem}"
