"""g2h_edge.bench: the tools that need more than one component: the benchmark commands
(``g2h-edge bench ...``) and the demo (``g2h-edge demo``).

- :mod:`g2h_edge.bench.demo`: the main job on the bundled example (export, serve, replay,
  table and plots);
- :mod:`g2h_edge.bench.accuracy`: real-data accuracy of single, ensemble and adapted models;
- :mod:`g2h_edge.bench.fuzz`: hostile messages against a real server while healthy streams
  run (crashes, lost healthy cycles, every reject reason counted);
- :mod:`g2h_edge.bench.soak`: many streams for minutes (sequence gaps, cycles out vs
  expected, RSS over time).
"""
