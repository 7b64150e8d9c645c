"""g2h_edge.bench: benchmark commands that need more than one component (``g2h-edge bench ...``)."""
