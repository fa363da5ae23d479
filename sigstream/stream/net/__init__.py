"""sigstream.stream.net: streams over ZeroMQ.

- :mod:`~sigstream.stream.net.wire`: wire format v1, the normative byte layout (and the
  only module that knows it).
- :mod:`~sigstream.stream.net.sockets`: endpoints, the loopback bind check, socket
  options, bind / connect, CURVE keys.
- :mod:`~sigstream.stream.net.pipes`: ``zmq:`` sources and sinks (PULL/SUB, PUSH/PUB)
  and their spec strings.
- :mod:`~sigstream.stream.net.client`: ``Client`` / ``AsyncClient`` (DEALER) for a
  server or router.
- :mod:`~sigstream.stream.net.service`: what server and router share: thread
  lifecycle, the client-facing ROUTER socket with reply accounting, counters.
- :mod:`~sigstream.stream.net.sessions`: the server's per-stream session state machine.
- :mod:`~sigstream.stream.net.server`: ``Server``, one model for many streams.
- :mod:`~sigstream.stream.net.ring` and :mod:`~sigstream.stream.net.router`: the
  stream-affine router in front of several servers.
"""
