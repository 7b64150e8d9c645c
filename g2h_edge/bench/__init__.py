"""Benchmark tools behind ``g2h-edge bench ...`` (engines, end to end, accuracy, soak, fuzz).

Tools, not library: they may import any part of ``g2h_edge``, but no library package imports
them (checked by ``tests/test_layers.py``). Each module is imported lazily by the CLI.
"""

__all__: list[str] = []    # tools: import the module you need (g2h_edge.bench.engine ...)
