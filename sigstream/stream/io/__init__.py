"""sigstream.stream.io: file, array and synthetic sources and sinks."""
