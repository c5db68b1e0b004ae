"""The UDP listener's socket settings and source check cache (no event loop needed)."""

import socket

from sipmask.transport.udp import DEFAULT_RECEIVE_BUFFER, UdpListener


def test_listener_asks_for_a_large_receive_buffer_and_caches_source_verdicts():
    listener = UdpListener(lambda *args: None, ())
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))

        class FakeTransport:
            def get_extra_info(self, name):
                return {"socket": sock, "sockname": sock.getsockname()}[name]

        listener.connection_made(FakeTransport())
        granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        with open("/proc/sys/net/core/rmem_max") as f:
            cap = int(f.read())
        # Linux reports twice what was set (bookkeeping), capped by rmem_max.
        assert granted >= min(DEFAULT_RECEIVE_BUFFER, cap)
        listener.datagram_received(b"x", ("192.0.2.9", 5060))
        listener.datagram_received(b"x", ("192.0.2.9", 5060))
        assert listener.stats.refused_source == 2
        assert listener._source_verdicts == {"192.0.2.9": False}
    finally:
        sock.close()
