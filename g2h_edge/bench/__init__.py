"""g2h_edge.bench: reliability benchmarks run as ``g2h-edge bench ...`` commands.

- :mod:`g2h_edge.bench.fuzz`: hostile messages against a real server while healthy streams
  run (crashes, lost healthy cycles, every reject reason counted);
- :mod:`g2h_edge.bench.soak`: many streams for minutes (sequence gaps, cycles out vs
  expected, RSS over time).
"""

__all__ = ["fuzz", "soak", "hostile"]
