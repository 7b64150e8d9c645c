"""g2h_edge.sources"""
__all__: list[str] = []
