"""Sockets and the event loop (UDP/TCP/TLS on asyncio + uvloop)."""
