"""Session timers (RFC 4028) on both legs: the caller's refresher is answered as asked (§9),
sipmask refreshes with UPDATE where it is the refresher and tears down a session whose
refresh does not come (§10); a callee's 422 is retried with its Min-SE (§7.4).
"""

from __future__ import annotations

from .._core import Response
from ..errors import LocalProtocolError
from .call import Call, Leg
from .core import CallControl
from .masking import (
    session_expires,
    supported_tags,
)


class SessionTimers(CallControl):
    """RFC 4028 for the engine."""

    def _timer_headers_for_a(self, call: Call) -> list[tuple[str, str]]:
        """Session-Expires in the 200 to the caller (RFC 4028 §9): its own interval and the
        refresher it asked for (`uac` when it left the choice to us); sipmask refreshes when
        that is `uas`, else watches that refreshes come. A caller that does not support
        timers gets none: nobody would refresh, and the call would be cut at the interval."""
        interval, refresher = session_expires(call.caller_invite)
        if not interval or "timer" not in supported_tags(call.caller_invite):
            return []
        refresher = "uas" if refresher == "uas" else "uac"
        call.a.session_interval = interval
        call.a.we_refresh = refresher == "uas"
        self._schedule_refresh(call, call.a)  # when sipmask is the refresher
        self._touch_refresh(call, call.a)
        return [("Session-Expires", f"{interval};refresher={refresher}"), ("Require", "timer")]

    def _session_timer_from_2xx(self, call: Call, leg: Leg, response: Response) -> None:
        interval, refresher = session_expires(response)
        if not interval:
            return
        leg.session_interval = interval
        leg.we_refresh = refresher == "uac"
        if leg.we_refresh:
            self._schedule_refresh(call, leg)
        else:
            self._touch_refresh(call, leg)

    def _schedule_refresh(self, call: Call, leg: Leg) -> None:
        if not leg.session_interval or not leg.we_refresh:
            return

        def refresh() -> None:
            if leg.dialog is None or call.ended:
                return
            try:
                update = leg.dialog.create_request("UPDATE", headers=[
                    ("Session-Expires", f"{leg.session_interval};refresher=uac"),
                    ("Supported", "timer")])
            except LocalProtocolError:
                return
            self._send(call, leg, update)
            self._touch_refresh(call, leg, expect_only=True)

        self._later(call, f"refresh-{leg.side.value}", leg.session_interval / 2, refresh)

    def _touch_refresh(self, call: Call, leg: Leg, expect_only: bool = False) -> None:
        """A refresh arrived (or was sent): the session lives another interval; a session
        with no refresh in time is stale and torn down (RFC 4028 §10)."""
        if not leg.session_interval:
            return
        grace = min(32.0, leg.session_interval / 3)
        self._later(call, f"expire-{leg.side.value}", leg.session_interval + grace,
                    lambda: self._hang_up(call, None, "completed", reason="SIP;cause=408",
                                          cause="session-expired"))
