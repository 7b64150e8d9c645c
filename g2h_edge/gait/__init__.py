"""g2h_edge.gait"""
__all__: list[str] = []
