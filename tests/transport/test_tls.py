"""TLS (RFC 3261 §26.2) on the same stream protocol, with a throwaway self-signed
certificate for 127.0.0.1 made by the `openssl` command."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest
from transport_helpers import BOUND, LOOPS, request, run

import sipmask
from sipmask.sip.events import Address, ResponseReceived, SipEvent
from sipmask.transport.endpoint import SipEndpoint
from sipmask.transport.responder import Responder
from sipmask.transport.stream import server_context

pytestmark = [
    pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command"),
    pytest.mark.parametrize("loop", LOOPS),
]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    folder: Path = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def _client_context(cert: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cert)


def test_options_over_tls(loop, certificate):
    cert, key = certificate

    async def main() -> None:
        responder = Responder()
        endpoint = SipEndpoint(responder.handle)
        server = await endpoint.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
        reader, writer = await asyncio.open_connection(
            server.host, server.port, ssl=_client_context(cert)
        )
        try:
            name = writer.get_extra_info("sockname")
            client = Address(name[0], name[1])
            writer.write(b"\r\n\r\n" + request("OPTIONS", server, client, transport="TLS"))
            await writer.drain()
            framer = sipmask.StreamFramer()
            pong = await asyncio.wait_for(reader.readexactly(2), BOUND)
            assert pong == b"\r\n"
            frames: list[bytes] = []
            while not frames:
                frames = framer.feed(await asyncio.wait_for(reader.read(65536), BOUND))
            response = sipmask.parse(frames[0])
            assert isinstance(response, sipmask.Response) and response.status == 200
            (connection,) = list(endpoint.tcp)
            assert connection.transport_name == "TLS"
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
            await endpoint.close()

    run(loop, main())


def test_request_from_endpoint_to_endpoint_over_tls(loop, certificate):
    cert, key = certificate

    async def main() -> None:
        callee = SipEndpoint(Responder().handle)
        server = await callee.listen("tls:127.0.0.1:0", ssl_context=server_context(cert, key))
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def app(endpoint: SipEndpoint, event: SipEvent) -> None:
            if isinstance(event, ResponseReceived) and not done.done():
                done.set_result(event.response.status)

        caller = SipEndpoint(app)
        try:
            data = request("OPTIONS", server, Address("127.0.0.1", 5061), transport="TLS")
            msg = sipmask.parse(data)
            assert isinstance(msg, sipmask.Request)
            await caller.send_request(
                msg, server, transport="tls", ssl_context=_client_context(cert)
            )
            assert await asyncio.wait_for(done, BOUND) == 200
        finally:
            await caller.close()
            await callee.close()

    run(loop, main())


def test_tls_listener_needs_a_context(loop):
    async def main() -> None:
        endpoint = SipEndpoint(Responder().handle)
        try:
            with pytest.raises(ValueError, match="ssl_context"):
                await endpoint.listen("tls:127.0.0.1:0")
        finally:
            await endpoint.close()

    run(loop, main())
