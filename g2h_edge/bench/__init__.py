"""g2h_edge.bench: benchmark commands that need more than one component (``g2h-edge bench ...``).

- :mod:`g2h_edge.bench.accuracy`: real-data accuracy of single, ensemble and adapted models;
- :mod:`g2h_edge.bench.fuzz`: hostile messages against a real server while healthy streams
  run (crashes, lost healthy cycles, every reject reason counted);
- :mod:`g2h_edge.bench.soak`: many streams for minutes (sequence gaps, cycles out vs
  expected, RSS over time).
"""
