"""A TCP relay for the VM tier: listens on one address and joins each connection to another.

Run inside a network namespace the test makes (``ip netns exec NS python forwarder.py LISTEN TO``),
it stands in for an array's LIF on a storage network: the host reaches LISTEN through a veth pair,
and the relay passes the bytes on to tgtd listening at TO in the root namespace. It prints
``listening`` once bound, so the test knows when to go on, and runs until it is killed.
"""

from __future__ import annotations

import asyncio
import sys


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def relay(to_host: str, to_port: int, client_reader, client_writer) -> None:
    try:
        server_reader, server_writer = await asyncio.open_connection(to_host, to_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))


async def main(listen: str, to: str) -> None:
    host, _, port = listen.rpartition(":")
    to_host, _, to_port = to.rpartition(":")
    server = await asyncio.start_server(
        lambda r, w: relay(to_host, int(to_port), r, w), host, int(port), reuse_address=True
    )
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
