"""sigstream.export"""
