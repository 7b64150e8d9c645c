"""g2h_edge.engines"""
__all__: list[str] = []
