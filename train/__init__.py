"""g2h_edge.train"""
__all__: list[str] = []
