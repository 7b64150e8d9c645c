"""g2h_edge.models: the published architectures, the model bundle, checkpoint import.

See docs/models.md.
"""

from g2h_edge.models.architectures import ARCHS, build_model, default_hparams, validate_hparams
from g2h_edge.models.bundle import (
    FORMAT_TAG,
    FORMAT_VERSION,
    Bundle,
    StandardizedModel,
    bundle_metadata,
    file_sha256,
    load_bundle,
    save_bundle,
)
from g2h_edge.models.checkpoint import import_checkpoint, read_checkpoint
from g2h_edge.models.mamba import SCANS, set_scan

__all__ = [
    "ARCHS",
    "build_model",
    "default_hparams",
    "validate_hparams",
    "FORMAT_TAG",
    "FORMAT_VERSION",
    "Bundle",
    "StandardizedModel",
    "bundle_metadata",
    "file_sha256",
    "load_bundle",
    "save_bundle",
    "import_checkpoint",
    "read_checkpoint",
    "SCANS",
    "set_scan",
]
