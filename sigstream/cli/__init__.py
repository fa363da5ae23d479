"""sigstream.cli"""
