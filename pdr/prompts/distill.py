"""Prompts of the summary distiller and of the top-k workspace layout."""

SUMMARY_SYSTEM = (
    "You compress several attempted solutions into short notes for the next attempt. "
    "Do not solve the problem again."
)

SUMMARY = (
    "Problem:\n{problem}\n\n{drafts}\n\n"
    "Write notes of at most {kappa} tokens: where the attempts agree, where they contradict each "
    "other, facts that were derived, candidate final answers with how many attempts gave each, "
    "open subgoals and the next steps."
)

DRAFT_IN_SUMMARY = "Attempt {number}:\n{text}"

CANDIDATE = "Candidate solution {number}:\n{text}"

PREVIOUS_ANSWER = "Your previous solution:\n{text}"

# Marks where a text cut to fit its bound lost its beginning (the end, with the answer, stays).
ELISION = "[...] "
