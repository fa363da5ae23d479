"""sigstream.models"""
