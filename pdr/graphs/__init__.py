"""The PDR, SR and long chain-of-thought graphs, their state and their run context."""
