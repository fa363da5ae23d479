"""ZeroMQ sockets as every sigstream endpoint opens them: options, bind / connect, CURVE.

One place for what the server, the router, the clients and the ``zmq:`` sources and
sinks all do with a socket:

- :func:`is_loopback_endpoint` / :func:`check_bind_allowed`: binding anything but a
  loopback address (127.0.0.0/8, ::1, localhost) or a local transport (``ipc://``,
  ``inproc://``) is refused with a :class:`~sigstream.core.errors.ConfigError` unless
  the socket is encrypted (CURVE) or the caller says ``insecure``: the wire format
  itself is not authenticated. Callers run the check before any socket exists.
- :class:`SocketOptions` and :func:`make_socket`: high-water marks, LINGER,
  ZMQ_MAXMSGSIZE, ROUTER_MANDATORY, send timeout, SUB subscription, IPv6 for a
  bracketed IPv6 host, and CURVE, set before the socket binds or connects;
  :func:`bind_socket` / :func:`connect_socket` turn ZeroMQ's errors into one-line
  ConfigErrors (``address ... is in use; pick another port``).
- CURVE (``zmq.auth`` certificates, libsodium): :class:`CurveServer` is the side
  that binds — its certificate with the secret key, and optionally a directory of
  authorised client certificates, enforced by a ``ThreadAuthenticator`` on the
  socket's context (without one, any client that knows the server's public key may
  connect). :class:`CurveClient` is the side that connects — the server's public key
  and its own key pair (a fresh one if none is given). :func:`curve_for` builds the
  right one for a bind or connect side from file names, as specs and the CLI give
  them. Key files are read, and errors raised, before any socket exists.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

import zmq

from sigstream.core.errors import ConfigError

__all__ = [
    "endpoint_host", "is_loopback_endpoint", "check_bind_allowed", "bind_socket",
    "connect_socket", "SocketOptions", "make_socket", "open_socket",
    "CurveServer", "CurveClient", "Curve", "curve_for", "load_public_key", "HANDSHAKE_FAILED",
]

_LOCAL_TRANSPORTS = ("inproc://", "ipc://")


# -- endpoints ------------------------------------------------------------------------------------


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://HOST:PORT`` endpoint (brackets removed), else None."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://"):]
    if ";" in rest:  # "source;destination" (connect only): the destination counts
        rest = rest.rsplit(";", 1)[1]
    host, sep, _port = rest.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ``inproc://``, ``ipc://`` and TCP on 127.0.0.0/8, ::1 or localhost."""
    if endpoint.startswith(_LOCAL_TRANSPORTS):
        return True
    host = endpoint_host(endpoint)
    if host is None:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name, a host name: not provably loopback


SERVICE_REMEDY = "give CURVE keys (--curve-secret FILE), or pass --insecure"
SPEC_REMEDY = ("give CURVE keys in the spec (curve_secret=FILE), or add insecure=1 to the "
               "spec")


def check_bind_allowed(endpoint: str, *, curve: bool = False, insecure: bool = False,
                       remedy: str = SERVICE_REMEDY) -> None:
    """ConfigError unless ``endpoint`` is loopback, or CURVE keys are set, or ``insecure``;
    ``remedy`` names the options of whoever binds (a command's flags, a spec's keys)."""
    if not isinstance(endpoint, str) or "://" not in endpoint:
        raise ConfigError(f"bad endpoint {endpoint!r}; expected e.g. tcp://127.0.0.1:5555")
    if is_loopback_endpoint(endpoint) or curve or insecure:
        return
    raise ConfigError(
        f"refusing to bind {endpoint}: it is not a loopback address and the stream is not "
        f"encrypted; bind 127.0.0.1, {remedy}"
    )


def bind_socket(sock: zmq.Socket, endpoint: str) -> str:
    """Bind and return the actual endpoint (``tcp://127.0.0.1:*`` picks a free port).

    A busy port or an unusable address raises a one-line ConfigError; the socket is
    left open (the caller closes it).
    """
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as err:
        if err.errno == zmq.EADDRINUSE:
            raise ConfigError(f"address {endpoint} is in use; pick another port") from None
        raise ConfigError(f"cannot bind {endpoint}: {err.strerror}") from None
    last = sock.getsockopt(zmq.LAST_ENDPOINT)
    return last.decode() if isinstance(last, bytes) and last else endpoint


def connect_socket(sock: zmq.Socket, endpoint: str, what: str = "") -> str:
    """Connect (ZeroMQ connects in the background); a bad endpoint is a one-line ConfigError."""
    try:
        sock.connect(endpoint)
    except zmq.ZMQError as err:
        raise ConfigError(f"cannot connect to {what + ' ' if what else ''}{endpoint}: "
                          f"{err.strerror}") from None
    return endpoint


# -- options --------------------------------------------------------------------------------------


def close_monitored(sock: zmq.Socket | None, monitor: zmq.Socket | None,
                    linger: int | None = None) -> None:
    """Close a socket and the monitor socket watching it (either may be None)."""
    if monitor is not None:
        if sock is not None:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        monitor.close(0)
    if sock is not None:
        sock.close(linger)


@dataclass(frozen=True)
class SocketOptions:
    """Socket options set before a socket binds or connects (None: ZeroMQ's default).

    hwm: send and receive high-water mark in messages (``sndhwm`` / ``rcvhwm`` set
    one side only and win over ``hwm``); linger: seconds a closing socket keeps
    flushing; max_message_bytes: ZMQ_MAXMSGSIZE (a peer sending a larger frame is
    disconnected by ZeroMQ); router_mandatory: a ROUTER raises EHOSTUNREACH for a
    gone peer instead of dropping silently; send_timeout: seconds a blocking send
    waits (ZMQ_SNDTIMEO); subscribe: a SUB socket's topic prefix; immediate:
    ZMQ_IMMEDIATE, queue messages only to peers whose connection is complete (a
    connecting PUSH with no receiver then blocks instead of queueing messages that a
    receiver may never take).
    """

    hwm: int | None = None
    sndhwm: int | None = None
    rcvhwm: int | None = None
    linger: float | None = None
    max_message_bytes: int | None = None
    router_mandatory: bool = False
    send_timeout: float | None = None
    subscribe: bytes | None = None
    immediate: bool = False

    def apply(self, sock: zmq.Socket) -> None:
        if self.immediate:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        if self.max_message_bytes is not None:
            sock.setsockopt(zmq.MAXMSGSIZE, int(self.max_message_bytes))
        sndhwm = self.hwm if self.sndhwm is None else self.sndhwm
        rcvhwm = self.hwm if self.rcvhwm is None else self.rcvhwm
        if sndhwm is not None:
            sock.setsockopt(zmq.SNDHWM, int(sndhwm))
        if rcvhwm is not None:
            sock.setsockopt(zmq.RCVHWM, int(rcvhwm))
        if self.linger is not None:
            sock.setsockopt(zmq.LINGER, int(self.linger * 1000))
        if self.router_mandatory:
            sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self.send_timeout is not None:
            sock.setsockopt(zmq.SNDTIMEO, max(0, int(self.send_timeout * 1000)))
        if self.subscribe is not None:
            sock.setsockopt(zmq.SUBSCRIBE, self.subscribe)


def make_socket(ctx: Any, kind: int, endpoint: str, options: SocketOptions = SocketOptions(),
                curve: Curve | None = None) -> zmq.Socket:
    """A ``kind`` socket of ``ctx`` with ``options``, IPv6 for an IPv6 host, and CURVE.

    It neither binds nor connects (a caller may attach a monitor first); on an error
    the socket is closed before the error propagates.
    """
    sock = ctx.socket(kind)
    try:
        options.apply(sock)
        if ":" in (endpoint_host(endpoint) or ""):
            sock.setsockopt(zmq.IPV6, 1)
        if curve is not None:
            curve.apply(sock)
    except BaseException:
        sock.close(0)
        raise
    return sock


def open_socket(ctx: Any, kind: int, endpoint: str, mode: str,
                options: SocketOptions = SocketOptions(),
                curve: Curve | None = None) -> tuple[zmq.Socket, str]:
    """:func:`make_socket`, then bind (``mode="bind"``) or connect; ``(socket, endpoint)``.

    The endpoint returned is the bound one (a ``*`` port resolved). On an error the
    socket is closed and a one-line ConfigError raised.
    """
    sock = make_socket(ctx, kind, endpoint, options, curve)
    try:
        actual = bind_socket(sock, endpoint) if mode == "bind" else connect_socket(sock, endpoint)
    except BaseException:
        sock.close(0)
        raise
    return sock, actual


# -- CURVE ----------------------------------------------------------------------------------------


def _need_curve() -> None:
    if not zmq.has("curve"):
        raise ConfigError("this libzmq has no CURVE support; rebuild pyzmq with libsodium")


def _z85(key: bytes | str) -> bytes:
    return key.encode() if isinstance(key, str) else bytes(key)


def _load_secret_certificate(path: str, role: str) -> tuple[bytes, bytes]:
    import zmq.auth

    _need_curve()
    if not os.path.isfile(path):
        raise ConfigError(f"CURVE secret key file {path!r} not found; create one with "
                          f"zmq.auth.create_certificates(DIR, '{role}')")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"cannot read CURVE certificate {path!r}: {err}") from None
    if not secret:
        raise ConfigError(f"{path!r} holds no secret key; pass the {role}'s .key_secret file")
    return public, secret


def load_public_key(key: bytes | str, what: str = "server") -> bytes:
    """A Z85 public key from a certificate file (public or secret) or a 40-character Z85 key."""
    import zmq.auth
    import zmq.utils.z85

    _need_curve()
    if isinstance(key, str) and os.path.isfile(key):
        try:
            public, _ = zmq.auth.load_certificate(key)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read CURVE certificate {key!r}: {err}") from None
        if not public:
            raise ConfigError(f"{key!r} holds no public key")
        return public
    raw = _z85(key)
    if len(raw) == 40:
        try:
            if len(zmq.utils.z85.decode(raw)) == 32:
                return raw
        except (ValueError, KeyError, IndexError, TypeError):
            pass
    raise ConfigError(f"{key!r} is neither a certificate file (not found) nor a 40-character "
                      f"Z85 key; pass the {what}'s public .key certificate")


@dataclass(frozen=True)
class CurveServer:
    """The binding side of a CURVE connection: its key pair and who may connect.

    ``clients_dir``: a directory of authorised client public certificates (``*.key``,
    as ``zmq.auth.create_certificates`` writes them); None lets any client that knows
    the public key connect (the traffic is still encrypted).
    """

    public: bytes
    secret: bytes = field(repr=False)
    clients_dir: str | None = None

    @classmethod
    def load(cls, secret_file: str, clients_dir: str | None = None,
             role: str = "server") -> CurveServer:
        """Read the certificate with the secret key (ConfigError if missing or unreadable)."""
        if clients_dir is not None and not os.path.isdir(clients_dir):
            raise ConfigError(f"CURVE clients directory {clients_dir!r} not found")
        public, secret = _load_secret_certificate(secret_file, role)
        return cls(public, secret, clients_dir)

    @classmethod
    def configure(cls, secret_file: str | None, clients_dir: str | None = None,
                  role: str = "server") -> CurveServer | None:
        """:meth:`load`, or None without ``secret_file`` (no CURVE); a ``clients_dir``
        that does not exist is a ConfigError either way."""
        if clients_dir is not None and not os.path.isdir(clients_dir):
            raise ConfigError(f"CURVE clients directory {clients_dir!r} not found")
        return cls.load(secret_file, clients_dir, role) if secret_file else None

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_SERVER, 1)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)

    def authenticator(self, ctx: zmq.Context) -> Any:
        """A started ``ThreadAuthenticator`` on ``ctx`` enforcing ``clients_dir`` (None
        without one). ZeroMQ has one per context: stop it before terminating ``ctx``."""
        if self.clients_dir is None:
            return None
        from zmq.auth.thread import ThreadAuthenticator

        auth = ThreadAuthenticator(ctx)
        try:
            auth.start()
        except zmq.ZMQError as err:
            raise ConfigError(f"cannot start a CURVE authenticator on this context "
                              f"({err.strerror}); give the socket a context of its own") from None
        auth.configure_curve(domain="*", location=self.clients_dir)
        return auth


@dataclass(frozen=True)
class CurveClient:
    """The connecting side of a CURVE connection: the server's public key and its own pair."""

    server_key: bytes
    public: bytes
    secret: bytes = field(repr=False)

    @classmethod
    def create(cls, server_key: bytes | str, public: bytes | str | None = None,
               secret: bytes | str | None = None) -> CurveClient:
        """From Z85 keys; a fresh key pair when ``public`` / ``secret`` are not both given."""
        _need_curve()
        if public is None or secret is None:
            pair = zmq.curve_keypair()
            public, secret = pair[0], pair[1]
        return cls(_z85(server_key), _z85(public), _z85(secret))

    @classmethod
    def load(cls, server_key: bytes | str, secret_file: str | None = None,
             what: str = "server") -> CurveClient:
        """``server_key``: a certificate file or Z85 key; ``secret_file``: this side's
        certificate with its secret key (None: a fresh key pair, which a server with an
        authorised-clients directory refuses)."""
        server = load_public_key(server_key, what)
        if secret_file is None:
            return cls.create(server)
        public, secret = _load_secret_certificate(secret_file, "client")
        return cls(server, public, secret)

    def apply(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, self.public)
        sock.setsockopt(zmq.CURVE_SECRETKEY, self.secret)


Curve = CurveServer | CurveClient

HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
"""Socket-monitor events of a failed security handshake (with CURVE: a wrong key)."""


def curve_for(mode: str, *, secret: str | None = None, server: bytes | str | None = None,
              clients: str | None = None) -> Curve | None:
    """CURVE for a ``bind`` or ``connect`` side from file names (None: no CURVE).

    A bind side is the CURVE server: ``secret`` (its certificate with the secret key)
    and optionally ``clients`` (authorised client certificates). A connect side is the
    client: ``server`` (the peer's public certificate or Z85 key) and optionally
    ``secret`` (its own certificate; else a fresh key pair).
    """
    if mode == "bind":
        if server is not None:
            raise ConfigError("curve_server= is for a connecting socket; a binding one is the "
                              "CURVE server and takes curve_secret=FILE")
        if secret is None:
            if clients is not None:
                raise ConfigError("curve_clients= needs curve_secret=FILE (the server's "
                                  "certificate)")
            return None
        return CurveServer.load(secret, clients)
    if clients is not None:
        raise ConfigError("curve_clients= is for a binding socket (the CURVE server)")
    if server is None:
        if secret is not None:
            raise ConfigError("a connecting socket with curve_secret= also needs "
                              "curve_server=FILE|KEY (the public key of the side that binds)")
        return None
    return CurveClient.load(server, secret)
