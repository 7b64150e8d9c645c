"""Run OpenSim 4.6 (``opensim`` extra, imported lazily) IK + ID (+ static optimisation) on a
scaled model and a marker file, for ``g2h-edge label --model``.

- Inverse kinematics: the lab's IK setup XML when given (its marker weights), else every
  model marker found in the .trc with weight 1; output ``<trc stem>_ik.mot``.
- Inverse dynamics: the IK coordinates low-pass filtered at ``lowpass_hz`` (6 Hz, OpenSim's
  usual gait setting), the ExternalLoads XML (GRF) when given, muscles excluded; output
  ``<stem>_id.sto`` with ``<coordinate>_moment`` columns in N·m.
- Static optimisation (``static_optimization=True``): AnalyzeTool with a
  StaticOptimization analysis over the same span; output
  ``<stem>_StaticOptimization_force.sto`` (N).

The resulting files are then labelled by :func:`g2h_edge.io.label.label_trial`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from g2h_edge.errors import ConfigError, DataError, require

__all__ = ["OpenSimRun", "OpenSimResult", "run_opensim"]


@dataclass(frozen=True)
class OpenSimRun:
    model_path: str
    trc_path: str
    out_dir: str
    ik_setup: str | None = None
    grf_xml: str | None = None
    static_optimization: bool = False
    lowpass_hz: float = 6.0

    def __post_init__(self):
        if not self.lowpass_hz > 0:
            raise ConfigError(f"lowpass_hz {self.lowpass_hz!r} must be > 0",
                              reason="bad_option")
        for key in ("model_path", "trc_path", "ik_setup", "grf_xml"):
            v = getattr(self, key)
            if v is not None and not Path(v).is_file():
                raise ConfigError(f"{key} {v!r}: no such file", reason="not_found")


@dataclass
class OpenSimResult:
    ik_path: str
    id_path: str
    so_path: str | None
    version: str


def _ik(osim, cfg: OpenSimRun, model, out: Path, stem: str, t0: float, t1: float) -> Path:
    tool = osim.InverseKinematicsTool(str(cfg.ik_setup)) if cfg.ik_setup else \
        osim.InverseKinematicsTool()
    tool.setModel(model)
    tool.setMarkerDataFileName(str(cfg.trc_path))
    if not cfg.ik_setup:
        names = set(osim.MarkerData(str(cfg.trc_path)).getMarkerNames())
        tasks = tool.getIKTaskSet()
        used = 0
        for i in range(model.getMarkerSet().getSize()):
            name = model.getMarkerSet().get(i).getName()
            if name in names:
                task = osim.IKMarkerTask()
                task.setName(name)
                task.setApply(True)
                task.setWeight(1.0)
                tasks.cloneAndAppend(task)
                used += 1
        if used < 3:
            raise DataError(f"{cfg.trc_path}: only {used} of the model's markers are in the "
                            "marker file; give --ik-setup or rename the markers",
                            reason="missing_column")
    tool.setStartTime(t0)
    tool.setEndTime(t1)
    path = out / f"{stem}_ik.mot"
    tool.setOutputMotionFileName(str(path))
    tool.setResultsDir(str(out))
    if not tool.run():
        raise DataError(f"OpenSim inverse kinematics failed on {cfg.trc_path}",
                        reason="opensim_failed")
    return path


def _id(osim, cfg: OpenSimRun, model, ik_path: Path, out: Path, stem: str, t0, t1) -> Path:
    tool = osim.InverseDynamicsTool()
    tool.setModel(model)
    tool.setCoordinatesFileName(str(ik_path))
    tool.setLowpassCutoffFrequency(cfg.lowpass_hz)
    tool.setStartTime(t0)
    tool.setEndTime(t1)
    if cfg.grf_xml:
        tool.setExternalLoadsFileName(str(cfg.grf_xml))
    excluded = osim.ArrayStr()
    excluded.append("Muscles")
    tool.setExcludedForces(excluded)
    tool.setResultsDir(str(out))
    tool.setOutputGenForceFileName(f"{stem}_id.sto")
    if not tool.run():
        raise DataError(f"OpenSim inverse dynamics failed on {ik_path}", reason="opensim_failed")
    return out / f"{stem}_id.sto"


def _so(osim, cfg: OpenSimRun, model, ik_path: Path, out: Path, stem: str, t0, t1) -> Path:
    tool = osim.AnalyzeTool()
    tool.setModel(model)
    tool.setName(stem)
    tool.setCoordinatesFileName(str(ik_path))
    tool.setLowpassCutoffFrequency(cfg.lowpass_hz)
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    if cfg.grf_xml:
        tool.setExternalLoadsFileName(str(cfg.grf_xml))
    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    tool.getAnalysisSet().cloneAndAppend(so)
    tool.setResultsDir(str(out))
    if not tool.run():
        raise DataError(f"OpenSim static optimisation failed on {ik_path}",
                        reason="opensim_failed")
    return out / f"{stem}_StaticOptimization_force.sto"


def run_opensim(cfg: OpenSimRun) -> OpenSimResult:
    """IK, ID and optionally SO with OpenSim's own tools (see module doc)."""
    osim = require("opensim", "opensim", "running OpenSim IK/ID/SO (g2h-edge label --model)")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(cfg.trc_path).stem
    markers = osim.MarkerData(str(cfg.trc_path))
    t0, t1 = markers.getStartFrameTime(), markers.getLastFrameTime()
    model = osim.Model(str(cfg.model_path))
    model.initSystem()
    ik_path = _ik(osim, cfg, model, out, stem, t0, t1)
    id_path = _id(osim, cfg, model, ik_path, out, stem, t0, t1)
    so_path = _so(osim, cfg, osim.Model(str(cfg.model_path)), ik_path, out, stem, t0, t1) \
        if cfg.static_optimization else None
    return OpenSimResult(str(ik_path), str(id_path), None if so_path is None else str(so_path),
                         osim.GetVersionAndDate())
