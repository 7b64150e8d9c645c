"""g2h_edge.firmware_bridge"""
__all__: list[str] = []
