"""g2h-edge: streaming gait monitor publishing hip muscle forces and joint moments per cycle."""

from g2h_edge.errors import G2HError

__version__ = "0.1.0"
__all__ = ["G2HError", "__version__"]
