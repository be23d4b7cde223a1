"""Prompts of the verify scorer: the model grades one draft."""

SYSTEM = "You check solutions to math problems. Be strict and brief."

VERIFY = (
    "Problem:\n{problem}\n\nProposed solution:\n{draft}\n\n"
    "Is the proposed solution correct? Check the key steps, then end with a line "
    "'Score: N' where N is 0 (certainly wrong) to 10 (certainly right)."
)
