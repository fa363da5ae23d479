"""sigstream.stream"""
