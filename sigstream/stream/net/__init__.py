"""sigstream.stream.net: ZeroMQ wire format, sockets, clients, server and router."""
