"""The socket ``lake serve`` listens on, bound before the app is built.

Created with the TCP protocol named: asyncio turns Nagle's algorithm off only for sockets whose
``proto`` is TCP, and accepted sockets inherit it from the listener. With ``proto`` 0, each
keep-alive answer sent as a header write and a body write waited ~40 ms for the client's delayed
acknowledgement of the first.
"""

from __future__ import annotations

import socket


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0: any free port); clients wait in its
    backlog until the app serves them. Raises ``OSError`` when the address cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(backlog)
    except OSError:
        listener.close()
        raise
    return listener
