"""sigstream.bench"""
