"""Media-plane IO: the rtpengine ng control client (`ng.py`) and its bencode (`bencode.py`).
Knows nothing of calls or SIP; the anchoring policy is `b2bua/anchoring.py`."""
