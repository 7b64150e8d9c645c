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
            raise ConfigError(f"lowpass_hz {self.lowpass_hz!r} must be > 0", reason="bad_option")
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


def _ran(tool) -> bool:
    """tool.run(), with OpenSim's C++ exceptions (RuntimeError here) as a failure."""
    try:
        return bool(tool.run())
    except RuntimeError as exc:
        raise DataError(
            f"OpenSim {type(tool).__name__} failed: {str(exc).strip()[:500]}", reason="opensim_failed"
        ) from None


def _ik(osim, cfg: OpenSimRun, model, out: Path, stem: str, t0: float, t1: float) -> Path:
    tool = osim.InverseKinematicsTool(str(cfg.ik_setup)) if cfg.ik_setup else osim.InverseKinematicsTool()
    tool.setModel(model)
    tool.setMarkerDataFileName(str(cfg.trc_path))
    if not cfg.ik_setup:
        data = osim.MarkerData(str(cfg.trc_path))  # keep alive: the names refer into it
        arr = data.getMarkerNames()
        names = {arr.get(i) for i in range(arr.getSize())}
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
            raise DataError(
                f"{cfg.trc_path}: only {used} of the model's markers are in the "
                "marker file; give --ik-setup or rename the markers",
                reason="missing_column",
            )
    tool.setStartTime(t0)
    tool.setEndTime(t1)
    path = out / f"{stem}_ik.mot"
    tool.setOutputMotionFileName(str(path))
    tool.setResultsDir(str(out))
    if not _ran(tool):
        raise DataError(f"OpenSim inverse kinematics failed on {cfg.trc_path}", reason="opensim_failed")
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
    if not _ran(tool):
        raise DataError(f"OpenSim inverse dynamics failed on {ik_path}", reason="opensim_failed")
    return out / f"{stem}_id.sto"


def _so(osim, cfg: OpenSimRun, ik_path: Path, out: Path, stem: str, t0, t1) -> Path:
    """Static optimisation through a written AnalyzeTool setup (the reliable way to run it
    from Python: the tool then loads the model, the states and its analysis itself)."""
    tool = osim.AnalyzeTool()
    tool.setName(stem)
    tool.setModelFilename(str(Path(cfg.model_path).resolve()))
    tool.setCoordinatesFileName(str(ik_path.resolve()))
    tool.setLowpassCutoffFrequency(cfg.lowpass_hz)
    tool.setInitialTime(t0)
    tool.setFinalTime(t1)
    if cfg.grf_xml:
        tool.setExternalLoadsFileName(str(Path(cfg.grf_xml).resolve()))
    so = osim.StaticOptimization()
    so.setStartTime(t0)
    so.setEndTime(t1)
    tool.getAnalysisSet().cloneAndAppend(so)
    tool.setResultsDir(str(out.resolve()))
    setup = out / f"{stem}_so_setup.xml"
    tool.printToXML(str(setup))
    if not _ran(osim.AnalyzeTool(str(setup))):
        raise DataError(f"OpenSim static optimisation failed on {ik_path}", reason="opensim_failed")
    return out / f"{stem}_StaticOptimization_force.sto"


def run_opensim(cfg: OpenSimRun) -> OpenSimResult:
    """IK, ID and optionally SO with OpenSim's own tools (see module doc)."""
    osim = require("opensim", "opensim", "running OpenSim IK/ID/SO (g2h-edge label --model)")
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # OpenSim logs to ./opensim.log by default: keep its log beside its results instead
    osim.Logger.removeFileSink()
    osim.Logger.addFileSink(str(out / "opensim.log"))
    stem = Path(cfg.trc_path).stem
    markers = osim.MarkerData(str(cfg.trc_path))
    t0, t1 = markers.getStartFrameTime(), markers.getLastFrameTime()
    model = osim.Model(str(cfg.model_path))
    model.initSystem()
    ik_path = _ik(osim, cfg, model, out, stem, t0, t1)
    id_path = _id(osim, cfg, model, ik_path, out, stem, t0, t1)
    so_path = _so(osim, cfg, ik_path, out, stem, t0, t1) if cfg.static_optimization else None
    return OpenSimResult(
        str(ik_path), str(id_path), None if so_path is None else str(so_path), osim.GetVersionAndDate()
    )
