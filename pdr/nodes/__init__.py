"""Node functions of the graphs: each reads state and run context and returns the keys it writes."""
