"""pdr: Parallel-Distill-Refine, Sequential Refine and long chain-of-thought as LangGraph graphs."""
