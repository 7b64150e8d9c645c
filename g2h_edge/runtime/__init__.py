"""g2h_edge.runtime"""
__all__: list[str] = []
