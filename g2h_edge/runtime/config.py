"""The server's one frozen configuration (units in the field names)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from g2h_edge.config import config_from_mapping
from g2h_edge.engines.base import COMPILE_MODES, TORCH_PRECISIONS
from g2h_edge.errors import ConfigError
from g2h_edge.gait.config import CycleConfig, ICDetectorConfig
from g2h_edge.schema import SIDES
from g2h_edge.wire import MAX_BODY_MASS_KG, MAX_RATE_HZ, MIN_BODY_MASS_KG, MIN_RATE_HZ

__all__ = [
    "ServerConfig",
    "DEFAULT_LISTEN",
    "DEFAULT_PUBLISH",
    "server_config",
    "MEMORY_BUDGET_BYTES",
    "STREAM_BYTES_MAX",
    "OUTPUT_MESSAGE_BYTES_MAX",
]

#: default addresses: loopback only (nothing is exposed to the network unless asked)
DEFAULT_LISTEN = "tcp://127.0.0.1:5555"
DEFAULT_PUBLISH = "tcp://127.0.0.1:5556"

#: the memory the default limits are sized for, worst case (docs/runtime.md, "Memory
#: budget"): max_streams x STREAM_BYTES_MAX + rcv_hwm x MAX_INPUT_PART_BYTES (per
#: publisher connection) + snd_hwm x OUTPUT_MESSAGE_BYTES_MAX (per subscriber)
MEMORY_BUDGET_BYTES = 1 << 30
#: one stream's state at the protocol's caps (2000 Hz, 6 s ring buffer, 1-1000 frames per
#: message, 128 waiting ICs): 1.4-1.7 MB held, measured with tracemalloc
STREAM_BYTES_MAX = 2 << 20
#: a cycle message of the largest model (14 muscles, y and y_abs, quality): about 21 kB
OUTPUT_MESSAGE_BYTES_MAX = 32 << 10


def _num(obj, name, lo, hi, *, optional=False):
    v = getattr(obj, name)
    if v is None and optional:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ConfigError(f"ServerConfig.{name} = {v!r} must be a number in [{lo}, {hi}]")
    object.__setattr__(obj, name, float(v))


def _int(obj, name, lo, hi):
    v = getattr(obj, name)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError(f"ServerConfig.{name} = {v!r} must be an integer in [{lo}, {hi}]")


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``g2h-edge serve`` needs. Addresses are ZeroMQ endpoints.

    ``listen`` binds the SUB socket for inputs; give ``connect`` instead to connect the SUB
    socket to one or more publishers. ``publish`` binds the PUB socket of results. A port
    of ``*`` lets the OS pick one (see ``Server.endpoints``).
    """

    engines: tuple[str, ...]
    listen: str | None = DEFAULT_LISTEN
    connect: tuple[str, ...] = ()
    publish: str = DEFAULT_PUBLISH
    #: hips to predict: "R" (right cycles) and/or "L" (left cycles, mirrored inputs)
    sides: tuple[str, ...] = SIDES
    #: used for streams whose meta gives no body mass (None: per-kg values only)
    body_mass_kg: float | None = None
    #: streams that send frames without a meta: assume this rate (None: reject them)
    default_rate_hz: float | None = None
    record_path: str | None = None
    allow_synthetic: bool = False
    #: a stream with no message for this long is forgotten (reported as stream_expired)
    stream_timeout_s: float = 10.0
    status_interval_s: float = 1.0
    #: on SIGINT/SIGTERM, keep handling already-queued input for at most this long
    shutdown_drain_s: float = 5.0
    #: most cycles in one engine call (larger groups are split). Measured on the 2-core CPU
    #: with the Transformer on ONNX Runtime: per-cycle cost is lowest at batches of 4-8 and
    #: grows ~40 % by 32-64 (cache), so larger batches buy nothing there; raise it on a GPU
    max_batch: int = 8
    #: most input messages handled before ready cycles are inferred and published
    max_drain: int = 512
    #: most live streams (256 x STREAM_BYTES_MAX = 512 MiB). A new stream beyond it evicts
    #: the stream silent longest, if silent for evict_idle_s (stream_evicted), else it is
    #: refused (too_many_streams)
    max_streams: int = 256
    #: a stream silent this long may be evicted to admit a new one when max_streams are held
    evict_idle_s: float = 2.0
    #: SUB receive high-water mark, messages per publisher connection (512 x
    #: MAX_INPUT_PART_BYTES = 256 MiB); a full queue holds the publisher back (XPUB_NODROP
    #: publishers block, plain PUB publishers drop)
    rcv_hwm: int = 512
    #: PUB send high-water mark, messages per subscriber (8192 x OUTPUT_MESSAGE_BYTES_MAX =
    #: 256 MiB); a subscriber this far behind misses messages (ZeroMQ PUB drops for it)
    snd_hwm: int = 8192
    #: run the convention check (radians, gait2354 knee sign) on early windows and cycles
    check_convention: bool = True
    #: seconds of a stream's first frames checked for convention before trusting it
    convention_window_s: float = 2.0
    #: add ``cpu_ms`` (server thread CPU time from arrival to publish) to cycle messages:
    #: the processing cost without time spent waiting for a CPU (benchmarks)
    cpu_timing: bool = False
    #: intra-op threads per engine (None: the backend's default, one per core). 1 by default:
    #: a second worker thread that went to sleep between cycles wakes slowly on small
    #: machines (torch engine, one B=1 call after 50 ms idle: 13.6 ms with 2 threads, 2.1 ms
    #: with 1; ONNX Runtime one-stream p50 5.3 vs 3.0 ms); use 2 with keep_warm_ms/busy_poll
    engine_threads: int | None = 1
    #: while idle, run each engine on a dummy cycle at most this often (ms; None: never).
    #: After ~0.1 s without work the first inference is several times slower (caches,
    #: clocks); a call every 50 ms keeps it near the warm time for ~6 % of one core
    #: (Transformer, ONNX Runtime, 1 thread; docs/runtime.md)
    keep_warm_ms: float | None = None
    #: never sleep in the input poll: the loop spins on one core so the first message of a
    #: cycle finds a hot core and hot caches (lowest tail latency; costs a full core)
    busy_poll: bool = False
    #: .pt engines: "fp32" or "bf16" (None: fp32), and torch.compile mode (None: eager;
    #: "default" | "max-autotune"; Transformer, or Mamba in fp32; docs/export.md)
    torch_precision: str | None = None
    torch_compile: str | None = None
    #: serve .pt2/.plan files this user's build key did not sign (g2h_edge.engines.trust)
    trust_native: bool = False
    #: security (g2h_edge/security.py): CURVE key directory for both sockets (None: plain
    #: TCP), and whether a non-loopback bind without CURVE is allowed anyway
    curve_keys: str | None = None
    insecure_public_bind: bool = False
    #: (index, count): take only streams with crc32(id) % count == index (runtime/scale.py)
    shard: tuple[int, int] | None = None
    cycle: CycleConfig = field(default_factory=CycleConfig)
    detector: ICDetectorConfig = field(default_factory=ICDetectorConfig)

    def __post_init__(self):
        engines = self.engines
        if (
            isinstance(engines, str)
            or not isinstance(engines, (tuple, list))
            or not engines
            or not all(isinstance(e, str) and e for e in engines)
        ):
            raise ConfigError(
                f"ServerConfig.engines = {engines!r} must be a non-empty list "
                "of engine file paths (.pt, .onnx, .plan)"
            )
        object.__setattr__(self, "engines", tuple(engines))
        connect = (self.connect,) if isinstance(self.connect, str) else tuple(self.connect)
        object.__setattr__(self, "connect", connect)
        if bool(self.listen) == bool(connect):
            raise ConfigError(
                "give exactly one of ServerConfig.listen (bind) and "
                f"ServerConfig.connect (connect), got {self.listen!r} and "
                f"{connect!r}"
            )
        for addr in (self.listen, self.publish, *connect):
            if addr is not None and (not isinstance(addr, str) or "://" not in addr):
                raise ConfigError(
                    f"address {addr!r} is not a ZeroMQ endpoint such as "
                    "tcp://127.0.0.1:5555 or ipc:///tmp/g2h.sock"
                )
        sides = tuple(self.sides)
        if not sides or len(set(sides)) != len(sides) or not set(sides) <= set(SIDES):
            raise ConfigError(f"ServerConfig.sides = {self.sides!r} must be R, L or R,L")
        object.__setattr__(self, "sides", sides)
        _num(self, "body_mass_kg", MIN_BODY_MASS_KG, MAX_BODY_MASS_KG, optional=True)
        _num(self, "default_rate_hz", MIN_RATE_HZ, MAX_RATE_HZ, optional=True)
        _num(self, "stream_timeout_s", 0.1, 86400.0)
        _num(self, "status_interval_s", 0.01, 3600.0)
        _num(self, "shutdown_drain_s", 0.0, 3600.0)
        _num(self, "convention_window_s", 0.5, 60.0)
        _num(self, "keep_warm_ms", 1.0, 60_000.0, optional=True)
        _num(self, "evict_idle_s", 0.0, 86400.0)
        _int(self, "max_batch", 1, 65536)
        _int(self, "max_drain", 1, 1_000_000)
        _int(self, "max_streams", 1, 10_000_000)
        _int(self, "rcv_hwm", 0, 2**31 - 1)
        _int(self, "snd_hwm", 0, 2**31 - 1)
        if self.engine_threads is not None:
            _int(self, "engine_threads", 1, 256)
        for name in ("allow_synthetic", "check_convention", "cpu_timing", "busy_poll", "trust_native"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"ServerConfig.{name} must be true or false")
        if self.torch_precision not in (None, *TORCH_PRECISIONS):
            raise ConfigError(
                f"ServerConfig.torch_precision = {self.torch_precision!r} must "
                f"be one of {list(TORCH_PRECISIONS)}"
            )
        if self.torch_compile not in (None, *COMPILE_MODES):
            raise ConfigError(
                f"ServerConfig.torch_compile = {self.torch_compile!r} must be one of {list(COMPILE_MODES)}"
            )
        if self.record_path is not None and not isinstance(self.record_path, str):
            raise ConfigError(f"ServerConfig.record_path = {self.record_path!r} must be a path")
        if not isinstance(self.cycle, CycleConfig) or not isinstance(self.detector, ICDetectorConfig):
            raise ConfigError(
                "ServerConfig.cycle / .detector must be CycleConfig / ICDetectorConfig instances"
            )
        _check_security_and_shard(self)


def _check_security_and_shard(cfg: ServerConfig) -> None:
    from g2h_edge.runtime.scale import parse_shard
    from g2h_edge.security import check_exposure, check_server_keys

    object.__setattr__(cfg, "shard", parse_shard(cfg.shard))
    if cfg.curve_keys is not None and not isinstance(cfg.curve_keys, str):
        raise ConfigError(f"ServerConfig.curve_keys = {cfg.curve_keys!r} must be a directory")
    if cfg.curve_keys is not None:
        check_server_keys(cfg.curve_keys)
    if not isinstance(cfg.insecure_public_bind, bool):
        raise ConfigError("ServerConfig.insecure_public_bind must be true or false")
    check_exposure(
        (cfg.listen, cfg.publish),
        cfg.connect,
        curve_keys=cfg.curve_keys,
        allow_insecure=cfg.insecure_public_bind,
        what="g2h-edge serve",
    )


def server_config(values: Mapping[str, Any]) -> ServerConfig:
    """Build a ServerConfig from a mapping; unknown keys raise ConfigError."""
    return config_from_mapping(ServerConfig, values)
