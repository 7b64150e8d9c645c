"""g2h_edge.models"""
__all__: list[str] = []
