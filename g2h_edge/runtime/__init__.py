"""g2h_edge.runtime: the ZeroMQ streaming server (protocol v1, docs/runtime.md).

- :class:`ServerConfig` / :func:`server_config`: the server's one frozen configuration;
- :class:`Server` / :func:`serve`: ingest, per-stream state, batched inference, publish;
- :class:`LocalServer` / :class:`OutputCollector`: a server on a thread and a subscriber
  that keeps every output (demo, benchmarks, tests);
- :class:`RecordWriter` / :func:`read_record`: the ``--record`` file format.
"""

from g2h_edge.runtime.config import DEFAULT_LISTEN, DEFAULT_PUBLISH, ServerConfig, server_config
from g2h_edge.runtime.local import LocalServer, OutputCollector
from g2h_edge.runtime.record import RecordWriter, read_record
from g2h_edge.runtime.run import serve
from g2h_edge.runtime.server import Server

__all__ = [
    "ServerConfig",
    "server_config",
    "DEFAULT_LISTEN",
    "DEFAULT_PUBLISH",
    "Server",
    "serve",
    "LocalServer",
    "OutputCollector",
    "RecordWriter",
    "read_record",
]
