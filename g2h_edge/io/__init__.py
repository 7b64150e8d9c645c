"""g2h_edge.io"""
__all__: list[str] = []
