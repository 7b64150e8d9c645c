"""g2h_edge.export"""
__all__: list[str] = []
