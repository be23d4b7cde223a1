"""Every prompt text of the graphs, one module per role."""
