"""sigstream.bench.zmq: ZeroMQ transport and serving benchmarks."""
