"""The socket ``lake serve`` listens on hands asyncio connections with Nagle's algorithm off, so
a keep-alive answer written as headers then body is not held for the client's delayed ACK."""

from __future__ import annotations

import asyncio
import socket

import pytest

from barlake.api.listener import listen


def test_accepted_connections_send_small_writes_at_once() -> None:
    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        listener = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()
        return nodelay

    assert asyncio.run(main()) != 0


def test_an_address_in_use_is_an_oserror_and_the_socket_is_closed() -> None:
    taken = listen("127.0.0.1", 0)
    try:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            listen("127.0.0.1", port)
    finally:
        taken.close()
