"""One mapping layer from a lab's columns to the ten model inputs, for every reader and source.

Every trial reader (CSV in its single- and multi-row flavours, OpenSim .mot/.sto, c3d) and
every live source (LSL, Xsens MVN, Qualisys QTM) turns its own labelled channels into the
ten ``schema.IN_COLS`` angles in degrees through this module:

- :class:`MappingConfig` says which source label feeds each input (``mapping``, with a
  leading ``-`` to flip the sign), a ``preset`` (``"pig"``: Vicon Plug-in Gait, see
  :data:`PIG_TO_RAJAGOPAL`), per-channel ``offsets_deg``, the ``units``, where time comes
  from (``time_column``, ``frame_column`` with ``rate_hz``, or ``rate_hz`` alone) and how long
  a marker dropout may be and still be filled (``max_gap_s``).
- :func:`resolve_channels` finds the ten channels among a source's labels (case-insensitive;
  a Nexus ``Subject:`` prefix and ``.``/space separators are ignored; ambiguity is an error).
- :func:`fill_gaps` fills dropouts (NaN runs) linearly when the samples either side are at
  most ``max_gap_s`` apart; longer runs stay NaN, so the frames are left out and counted and
  the server (or :func:`g2h_edge.io.cycles.cut_cycles`) sees a gap that rejects the cycle
  as ``gap``.
- :func:`trial_input_options` is the one click decorator that gives ``replay``, ``predict``
  and ``lsl`` the same ``--map/--preset/--offset/--units/--rate-hz/--time-column/
  --frame-column/--max-gap-s/--events`` options.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from g2h_edge.errors import ConfigError
from g2h_edge.schema import IN_COLS

__all__ = [
    "MappingConfig",
    "ChannelPlan",
    "PRESETS",
    "PIG_TO_RAJAGOPAL",
    "MVN_TO_RAJAGOPAL",
    "resolve_channels",
    "normalise_label",
    "unit_word",
    "fill_gaps",
    "GapReport",
    "parse_map_items",
    "parse_offsets",
    "trial_input_options",
    "current_mapping",
    "DEFAULT_MAPPING",
]

#: Vicon Plug-in Gait model outputs -> OpenSim Rajagopal 2016 coordinates:
#: (source label, sign, offset deg); value = sign * source + offset. Sources and the
#: uncertain entries are in docs/data_formats.md ("Plug-in Gait -> Rajagopal").
PIG_TO_RAJAGOPAL: dict[str, tuple[str, float, float]] = {
    "hip_flexion_r": ("RHipAngles_X", 1.0, 0.0),
    "hip_adduction_r": ("RHipAngles_Y", 1.0, 0.0),
    "hip_rotation_r": ("RHipAngles_Z", 1.0, 0.0),
    "hip_flexion_l": ("LHipAngles_X", 1.0, 0.0),
    "hip_adduction_l": ("LHipAngles_Y", 1.0, 0.0),
    "hip_rotation_l": ("LHipAngles_Z", 1.0, 0.0),
    "knee_angle_r": ("RKneeAngles_X", 1.0, 0.0),
    "ankle_angle_r": ("RAnkleAngles_X", 1.0, 0.0),
    "knee_angle_l": ("LKneeAngles_X", 1.0, 0.0),
    "ankle_angle_l": ("LAnkleAngles_X", 1.0, 0.0),
}
#: Xsens MVN joint angles (network streamer type 20, ZXY Euler: x ab/adduction, y rotation,
#: z flexion) -> Rajagopal. The signs follow MVN's export naming (first-named motion
#: positive) and are an ASSUMPTION, not checked on a live MVN: docs/sources.md ("Xsens MVN")
MVN_TO_RAJAGOPAL: dict[str, tuple[str, float, float]] = {
    "hip_flexion_r": ("jRightHip_z", 1.0, 0.0),
    "hip_adduction_r": ("jRightHip_x", -1.0, 0.0),
    "hip_rotation_r": ("jRightHip_y", 1.0, 0.0),
    "hip_flexion_l": ("jLeftHip_z", 1.0, 0.0),
    "hip_adduction_l": ("jLeftHip_x", -1.0, 0.0),
    "hip_rotation_l": ("jLeftHip_y", 1.0, 0.0),
    "knee_angle_r": ("jRightKnee_z", 1.0, 0.0),
    "ankle_angle_r": ("jRightAnkle_z", 1.0, 0.0),
    "knee_angle_l": ("jLeftKnee_z", 1.0, 0.0),
    "ankle_angle_l": ("jLeftAnkle_z", 1.0, 0.0),
}
#: named presets (lower-case name -> table as above)
PRESETS: dict[str, dict[str, tuple[str, float, float]]] = {"pig": PIG_TO_RAJAGOPAL, "mvn": MVN_TO_RAJAGOPAL}

_UNIT_WORDS = {
    "deg": "deg",
    "degree": "deg",
    "degrees": "deg",
    "°": "deg",
    "rad": "rad",
    "radian": "rad",
    "radians": "rad",
}


@dataclass(frozen=True)
class MappingConfig:
    """How source columns become the ten inputs (see module doc); units in the names."""

    #: IN_COLS name -> source label ("-LABEL" flips the sign)
    mapping: dict = field(default_factory=dict)
    #: a named table of labels, signs and offsets (``"pig"``); ``None``: schema names, or
    #: Plug-in Gait when the file has all its labels and none of the schema names
    preset: str | None = None
    #: IN_COLS name -> degrees added after the sign (calibration offsets)
    offsets_deg: dict = field(default_factory=dict)
    #: "deg" | "rad" for every mapped channel; None: what the file says (else degrees)
    units: str | None = None
    #: frames per second, for files without a time column (with a frame column or alone)
    rate_hz: float | None = None
    time_column: str | None = None
    #: a 1-based frame-number column: t = (frame - 1) / rate_hz
    frame_column: str | None = None
    #: dropouts whose neighbours are at most this far apart (s) are filled linearly;
    #: 0: never filled (left out and counted)
    max_gap_s: float = 0.0
    #: events file to use instead of the sibling ``<stem>_events.json`` (.json or .c3d)
    events_path: str | None = None

    def __post_init__(self):
        for key in ("mapping", "offsets_deg"):
            val = getattr(self, key)
            if not isinstance(val, dict):
                raise ConfigError(f"MappingConfig.{key} must be a dict, got {val!r}", reason="bad_option")
            unknown = sorted(set(val) - set(IN_COLS))
            if unknown:
                raise ConfigError(
                    f"{key} names {unknown} are not input channels; use {list(IN_COLS)}", reason="bad_option"
                )
        for k, v in self.offsets_deg.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ConfigError(
                    f"offset for {k} must be a finite number of degrees, got {v!r}", reason="bad_option"
                )
        if self.preset is not None and self.preset.lower() not in PRESETS:
            raise ConfigError(
                f"unknown preset {self.preset!r}; use one of {sorted(PRESETS)}", reason="bad_option"
            )
        if self.units is not None and self.units not in ("deg", "rad"):
            raise ConfigError(f"units {self.units!r} must be 'deg' or 'rad'", reason="bad_option")
        if self.rate_hz is not None and (
            isinstance(self.rate_hz, bool)
            or not isinstance(self.rate_hz, (int, float))
            or not 1.0 <= self.rate_hz <= 10_000.0
        ):
            raise ConfigError(
                f"rate_hz {self.rate_hz!r} must be a number in [1, 10000] Hz", reason="bad_option"
            )
        if self.time_column and self.frame_column:
            raise ConfigError("give a time column or a frame column, not both", reason="bad_option")
        g = self.max_gap_s
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not 0.0 <= g <= 5.0:
            raise ConfigError(f"max_gap_s {g!r} must be within [0, 5] s", reason="bad_option")

    @property
    def is_default(self) -> bool:
        return self == DEFAULT_MAPPING


DEFAULT_MAPPING = MappingConfig()


@dataclass(frozen=True)
class ChannelPlan:
    """Where the ten inputs are in a source: value = sign * column + offset_deg."""

    index: tuple[int, ...]  # (10,) column indices, IN_COLS order
    sign: np.ndarray  # (10,) +-1
    offset_deg: np.ndarray  # (10,) degrees, added after unit conversion and sign
    labels: tuple[str, ...]  # the source labels used
    described: str  # one line: which naming scheme matched

    def apply(self, x: np.ndarray, rad: np.ndarray | bool = False) -> np.ndarray:
        """(n, m) source values -> (n, 10) float32 degrees (``rad``: per-channel flags)."""
        q = np.asarray(x, dtype=np.float64)[:, list(self.index)]  # (n, 10)
        q = np.where(np.broadcast_to(rad, (10,)), np.degrees(q), q)
        return (q * self.sign + self.offset_deg).astype(np.float32)


def normalise_label(label: str) -> str:
    """Lower case, surrounding space stripped, ``.``/space/``-`` runs made ``_``."""
    return re.sub(r"[\s.\-]+", "_", str(label).strip().lower()).strip("_")


def _label_keys(label: str) -> set[str]:
    """The keys a source label answers to: itself, without a ``Subject:`` prefix, and for
    schema-style names without ``_deg``/``_rad`` and OpenSim 4 ``/value`` paths."""
    base = str(label).strip()
    base = base[: -len("/value")] if base.endswith("/value") else base
    keys = {
        normalise_label(base),
        normalise_label(base.rsplit("/", 1)[-1]),
        normalise_label(base.rsplit(":", 1)[-1]),
    }
    for k in list(keys):
        m = re.fullmatch(r"(.+?)_(deg|rad)", k)
        if m:
            keys.add(m.group(1))
    return {k for k in keys if k}


def _index(labels) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        for k in _label_keys(lab):
            out.setdefault(k, []).append(i)
    return out


def _find(lookup, labels, want: str, col: str) -> int | None:
    hits = sorted(set(lookup.get(normalise_label(want), [])))
    if len(hits) > 1:
        raise ConfigError(
            f"label {want!r} (for {col}) matches {len(hits)} columns: "
            f"{[labels[i] for i in hits]}; map it with its full label "
            f"(--map {col}=FULL_LABEL)",
            reason="ambiguous_channel",
        )
    return hits[0] if hits else None


def _table_for(cfg: MappingConfig, lookup) -> tuple[dict, str]:
    """The (label, sign, offset) table to use and a description of it."""
    if cfg.preset is not None:
        name = cfg.preset.lower()
        return dict(PRESETS[name]), f"preset {name}"
    schema = {c: (c, 1.0, 0.0) for c in IN_COLS}
    if all(normalise_label(c) in lookup for c in IN_COLS if c not in cfg.mapping):
        return schema, "schema names"
    if all(normalise_label(v[0]) in lookup for c, v in PIG_TO_RAJAGOPAL.items() if c not in cfg.mapping):
        return dict(PIG_TO_RAJAGOPAL), "preset pig (Plug-in Gait labels found)"
    return schema, "schema names"


def resolve_channels(
    labels, cfg: MappingConfig = DEFAULT_MAPPING, *, what: str = "the source"
) -> ChannelPlan:
    """Find the ten inputs among ``labels``; raises ConfigError listing the labels."""
    labels = [str(x) for x in labels]
    if not any(lab.strip() for lab in labels):
        raise ConfigError(
            f"{what} has no channel labels: give them (--labels) or map each input with --map NAME=LABEL",
            reason="no_labels",
        )
    lookup = _index(labels)
    table, described = _table_for(cfg, lookup)
    if cfg.mapping:
        described += f" + {len(cfg.mapping)} mapped"
    index, sign, offset, used, missing = [], [], [], [], []
    for col in IN_COLS:
        label, s, off = table[col]
        if col in cfg.mapping:
            want = str(cfg.mapping[col]).strip()
            s, label = (-1.0, want[1:].strip()) if want.startswith("-") else (1.0, want)
        off = off + float(cfg.offsets_deg.get(col, 0.0))
        i = _find(lookup, labels, label, col)
        if i is None:
            missing.append(f"{col} (label {label!r})" if label != col else col)
            continue
        index.append(i)
        sign.append(s)
        offset.append(off)
        used.append(labels[i])
    if missing:
        shown = labels if len(labels) <= 40 else labels[:40] + ["..."]
        raise ConfigError(
            f"{what}: missing required column(s) {missing}; its labels are {shown}. "
            "Map them with --map NAME=LABEL (or --preset pig for Plug-in Gait)",
            reason="missing_channel",
        )
    return ChannelPlan(tuple(index), np.asarray(sign), np.asarray(offset), tuple(used), described)


def unit_word(text) -> str | None:
    """'deg' / 'rad' for a unit string spelt any common way, else None."""
    return _UNIT_WORDS.get(str(text or "").strip().lower())


# ----------------------------------------------------------------------------- dropouts
@dataclass(frozen=True)
class GapReport:
    """What :func:`fill_gaps` did: frames filled, frames still non-finite, and the
    unfilled runs as (t_before, t_after) s (None where the run touches an end)."""

    filled_frames: int
    dropout_frames: int
    unfilled: tuple


def _runs(bad: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where ``bad`` is True."""
    edges = np.diff(np.concatenate([[0], bad.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def fill_gaps(t: np.ndarray, q: np.ndarray, max_gap_s: float) -> tuple[np.ndarray, GapReport]:
    """Fill runs of non-finite frames of ``q`` (n, C) linearly in ``t`` when the finite
    frames either side are at most ``max_gap_s`` apart (runs at either end never are).

    A frame counts as a dropout when any channel is non-finite; a filled run is filled in
    every channel. Returns a new array and a :class:`GapReport`.
    """
    q = np.array(q, dtype=np.float64)
    bad = ~np.isfinite(q).all(axis=1)
    filled, unfilled = 0, []
    for a, b in _runs(bad):
        if a == 0 or b == len(t):
            unfilled.append((None if a == 0 else float(t[a - 1]), None if b == len(t) else float(t[b])))
            continue
        span = float(t[b] - t[a - 1])
        if span > max_gap_s + 1e-9:
            unfilled.append((float(t[a - 1]), float(t[b])))
            continue
        w = ((t[a:b] - t[a - 1]) / span)[:, None]  # (k, 1)
        q[a:b] = q[a - 1] * (1.0 - w) + q[b] * w
        filled += b - a
    left = int(np.count_nonzero(~np.isfinite(q).all(axis=1)))
    return q, GapReport(filled_frames=filled, dropout_frames=left, unfilled=tuple(unfilled))


# ----------------------------------------------------------------------------- CLI
def parse_map_items(items) -> dict:
    """``("hip_flexion_r=RHipAngles_X", "a=b,c=-d")`` -> {name: label}."""
    out = {}
    for item in items or ():
        for part in str(item).split(","):
            if not part.strip():
                continue
            name, sep, label = part.partition("=")
            if not sep or not name.strip() or not label.strip():
                raise ConfigError(
                    f"--map {part!r} is not NAME=LABEL (e.g. "
                    "hip_flexion_r=RHipAngles_X, or =-LABEL to flip the sign)",
                    reason="bad_option",
                )
            out[name.strip()] = label.strip()
    return out


def parse_offsets(items) -> dict:
    """``("hip_flexion_r=-9",)`` -> {name: degrees}."""
    out = {}
    for name, label in parse_map_items(items).items():
        try:
            out[name] = float(label)
        except ValueError:
            raise ConfigError(
                f"--offset {name}={label!r}: the offset must be a number of degrees", reason="bad_option"
            ) from None
    return out


_ACTIVE: contextvars.ContextVar = contextvars.ContextVar("g2h_mapping", default=None)


def current_mapping() -> MappingConfig:
    """The mapping set by :func:`trial_input_options` for the running command (else the
    default): readers use it when no mapping is passed explicitly."""
    return _ACTIVE.get() or DEFAULT_MAPPING


_OPTION_NAMES = (
    "map_items",
    "map_preset",
    "map_offsets",
    "map_units",
    "map_time_column",
    "map_frame_column",
    "map_max_gap_s",
    "map_events",
    "map_rate_hz",
)


def _click_options(files: bool, events: bool, rate: bool) -> list:
    """The click options of :func:`trial_input_options`, in help order."""
    import click

    opts = [
        click.option(
            "--map",
            "map_items",
            multiple=True,
            metavar="NAME=LABEL[,...]",
            help="Input NAME comes from the column/channel LABEL (-LABEL flips "
            "its sign; repeatable). Default: the schema names, or Plug-in "
            "Gait labels (LHipAngles_X...).",
        ),
        click.option(
            "--preset",
            "map_preset",
            type=click.Choice(sorted(PRESETS)),
            default=None,
            help="A named label/sign/offset table (pig: Vicon "
            "Plug-in Gait, mvn: Xsens MVN -> Rajagopal; "
            "docs/data_formats.md, docs/sources.md).",
        ),
        click.option(
            "--offset",
            "map_offsets",
            multiple=True,
            metavar="NAME=DEG",
            help="Add DEG degrees to input NAME (calibration; repeatable).",
        ),
        click.option(
            "--units",
            "map_units",
            type=click.Choice(["deg", "rad"]),
            default=None,
            help="Angle units of the mapped channels [default: what the file/stream says, else deg].",
        ),
    ]
    file_opts = [
        click.option(
            "--time-column",
            "map_time_column",
            default=None,
            help="Column holding time in s [default: time/time_s].",
        ),
        click.option(
            "--frame-column",
            "map_frame_column",
            default=None,
            help="Column holding 1-based frame numbers (with the file's or "
            "--rate-hz rate) [default: Frame/ITEM when there is no time].",
        ),
        click.option(
            "--max-gap-s",
            "map_max_gap_s",
            type=click.FloatRange(0.0, 5.0),
            default=0.0,
            show_default=True,
            help="Fill marker dropouts (NaN/empty rows) linearly when they last "
            "at most this long; longer ones are left out and counted.",
        ),
    ]
    if files:
        opts += file_opts
    if events and files:
        opts.append(
            click.option(
                "--events",
                "map_events",
                default=None,
                type=click.Path(exists=True, dir_okay=False),
                help="IC events from this file (.json or .c3d EVENT group) instead of <stem>_events.json.",
            )
        )
    if rate:
        opts.append(
            click.option(
                "--rate-hz",
                "map_rate_hz",
                type=float,
                default=None,
                help="Frame rate for files without a time column (live: irregular streams, or to override).",
            )
        )
    return opts


def trial_input_options(
    f=None,
    *,
    kwarg: str | None = None,
    rate: bool = True,
    rate_param: str | None = None,
    events: bool = True,
    files: bool = True,
):
    """Click decorator adding the mapping options (see module doc) to a command.

    The options are consumed by the decorator: with ``kwarg`` the command receives one
    :class:`MappingConfig` under that name; without, the config is made current
    (:func:`current_mapping`) while the command runs, so readers use it. ``rate=False``
    leaves out ``--rate-hz`` (a command that has its own); ``rate_param`` then names that
    command parameter, used as the file rate when given explicitly on the command line.
    ``files=False`` (live sources) keeps only --map/--preset/--offset/--units/--rate-hz.
    """
    import click

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            vals = {k: kwargs.pop(k, None) for k in _OPTION_NAMES}
            rate_hz = vals["map_rate_hz"]
            if rate_param is not None:
                ctx = click.get_current_context()
                src = ctx.get_parameter_source(rate_param)
                if src is not None and src.name != "DEFAULT":
                    rate_hz = kwargs.get(rate_param)
            try:
                cfg = MappingConfig(
                    mapping=parse_map_items(vals["map_items"]),
                    preset=vals["map_preset"],
                    offsets_deg=parse_offsets(vals["map_offsets"]),
                    units=vals["map_units"],
                    rate_hz=rate_hz,
                    time_column=vals["map_time_column"],
                    frame_column=vals["map_frame_column"],
                    max_gap_s=vals["map_max_gap_s"] or 0.0,
                    events_path=vals["map_events"],
                )
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None
            if kwarg is not None:
                kwargs[kwarg] = cfg
                return fn(*args, **kwargs)
            token = _ACTIVE.set(cfg)
            try:
                return fn(*args, **kwargs)
            finally:
                _ACTIVE.reset(token)

        wrapper.__click_params__ = list(getattr(fn, "__click_params__", []))
        opts = _click_options(files, events, rate)
        for opt in reversed(opts):  # click lists the last applied first
            wrapper = opt(wrapper)
        return wrapper

    return deco(f) if f is not None else deco
