"""In-dialog relay: requests inside a leg's dialog (BYE, re-INVITE, UPDATE, INFO, MESSAGE,
PRACK, OPTIONS), confirmed or early, are answered there or relayed on the other leg, bodies
and headers rebuilt through the masking allow-lists; their final responses travel back.
ACKs carry a late offer's answer across.
"""

from __future__ import annotations

from .._core import Response
from ..errors import LocalProtocolError, ParseError
from ..sip.dialog import Dialog
from ..sip.events import (
    AckReceived,
    RequestReceived,
    TransactionKey,
)
from ..sip.responses import make_response
from ..sip.transaction import client_key
from ..sip.validate import stateless_answer
from .call import Call, Leg, Phase, Relay, Side
from .core import (
    ACCEPTED_TYPES,
    REQUIRE_SUPPORTED,
    map_failure,
)
from .masking import (
    SIPMASK_METHODS,
    BodyRefused,
    crossing_body,
    crossing_headers,
    has_sdp,
    leg_session_timer,
    own_session_timer,
    reason_value,
)
from .session_timers import SessionTimers


class DialogRelay(SessionTimers):
    """Requests inside a call's dialogs."""

    def _in_dialog(self, event: RequestReceived) -> None:
        request = event.request
        answer = stateless_answer(request, methods=SIPMASK_METHODS,
                                  supported=REQUIRE_SUPPORTED, accepted_types=ACCEPTED_TYPES)
        entry = self._by_leg.get((request.call_id or "", request.to_tag or ""))
        if entry is None:
            self._respond(event.key, answer or make_response(request, 481))
            return
        call, leg = entry
        if answer is not None and request.method != "OPTIONS":
            self._respond(event.key, answer)
            return
        dialog = leg.dialog
        if leg.side is Side.CALLEE and dialog is None:
            dialog = call.b_dialogs.for_request(request)
        if dialog is None:
            self._respond(event.key, make_response(request, 481))
            return
        verdict = dialog.receive_request(request)
        if verdict is not None:
            self._respond(event.key, verdict)
            return
        method = request.method
        if method == "BYE":
            self._respond(event.key, dialog.create_response(request, 200))
            if call.phase is Phase.ANSWERED:
                self._hang_up(call, leg, "completed", reason=reason_value(request),
                              cause=f"bye-{leg.side.value}")
            elif leg.side is Side.CALLER:
                self._fail(call, 487, "cancelled", "bye-caller")
            else:  # a callee ending its early dialog (§15 forbids it; the call ends all the same)
                self._fail(call, 480, "failed", "bye-callee")
            return
        if method == "OPTIONS":
            self._respond(event.key, dialog.create_response(
                request, 200, headers=[("Allow", ", ".join(SIPMASK_METHODS))]))
            return
        if method == "PRACK":
            # sipmask sends no reliable provisionals, so nothing to acknowledge (RFC 3262 §3).
            self._respond(event.key, dialog.create_response(request, 481))
            return
        if method in ("INVITE", "UPDATE"):
            self._touch_refresh(call, leg)
        self._relay(call, leg, event, dialog)

    def _relay(self, call: Call, leg: Leg, event: RequestReceived, dialog: Dialog) -> None:
        request = event.request
        method = request.method
        other = call.other(leg)
        target = other.dialog if other is not None else None
        if target is None and other is not None and method != "INVITE" and not call.ended:
            target = self._early_target(call, other)  # INFO, UPDATE... while ringing
        if other is None or target is None or call.ended:
            # Nothing to relay to (the other leg has no dialog, not even an early one).
            self._respond(event.key, dialog.create_response(request, 491 if method in (
                "INVITE", "UPDATE") else 481))
            return
        try:
            body = crossing_body(request, method, other.origin)
        except BodyRefused as refused:
            self._respond(event.key, dialog.create_response(
                request, 415, headers=[("Accept", ", ".join(refused.accept))]))
            return
        except ParseError:
            self._respond(event.key, dialog.create_response(request, 400, "Bad Request (SDP)"))
            return
        headers = crossing_headers(request, self.allow) + self._ua_header + body.headers()
        headers += leg_session_timer(method, other.session_interval, other.we_refresh)
        try:
            sent = target.create_request(method, headers=headers, body=body.data)
        except LocalProtocolError:
            self._respond(event.key, dialog.create_response(
                request, 491 if method == "INVITE" else 500))
            return
        key = client_key(sent)
        call.relays[key] = Relay(leg, dialog, target, event.key, request, sent)
        kind = "offer" if method in ("INVITE", "UPDATE") else "answer"
        self._deliver(call, other, sent, kind, lambda: self._send(call, other, sent))

    def _early_target(self, call: Call, other: Leg) -> Dialog | None:
        """The early dialog of `other` a request in an early dialog is relayed on: the
        caller's, or the callee fork that rang last."""
        if other.side is Side.CALLER:
            return other.dialog
        early = call.b_dialogs.early(other.call_id, other.local_tag)
        return early[-1] if early else None

    def _relayed_response(self, call: Call, key: TransactionKey, relay: Relay,
                          response: Response, retransmission: bool) -> None:
        other = call.other(relay.source)
        assert other is not None
        target = relay.target
        status = response.status
        method = relay.sent.method
        if status < 200:
            return  # provisionals of relayed requests stay on their leg
        if method == "INVITE" and status < 300:
            target.receive_response(response)
            if retransmission:
                ack = target.ack_for_retransmitted_2xx(response)
                if ack is not None:
                    self._send(None, other, ack)
                return
            if has_sdp(relay.request) or not has_sdp(response):
                self._send(None, other, target.create_ack(response))
            else:
                call.deferred_ack = (target, response)
        else:
            target.receive_response(response)
        call.relays.pop(key, None)
        self._answer_relay(relay, status, response)
        if status in (408, 481) and call.phase is Phase.ANSWERED:
            self._hang_up(call, other, "completed", cause=f"{status}-{other.side.value}")

    def _answer_relay(self, relay: Relay, status: int, response: Response | None = None) -> None:
        source = relay.source
        dialog = relay.source_dialog
        call = self._by_leg.get((source.call_id, source.local_tag))
        if call is None:
            return
        method = relay.request.method
        headers: list[tuple[str, str]] = []
        data = b""
        if response is not None:
            try:
                body = crossing_body(response, method, source.origin)
            except (BodyRefused, ParseError):
                body = crossing_body(Response(status, ""), method, source.origin)
            headers = crossing_headers(response, self.allow) + body.headers()
            headers += own_session_timer(relay.request) if status < 300 else []
            data = body.data
        status = map_failure(status) if status >= 300 else status
        answer = dialog.create_response(relay.request, status, headers=headers, body=data)

        def send() -> None:
            self._respond(relay.server_key, answer)
            if method == "INVITE" and 200 <= status < 300:
                self._retransmit_2xx(call[0], source, relay.server_key, answer)

        kind = "answer" if has_sdp(relay.request) else "offer"
        self._deliver(call[0], source, answer, kind, send)

    def _on_ack(self, event: AckReceived) -> None:
        request = event.request
        entry = self._by_leg.get((request.call_id or "", request.to_tag or ""))
        if entry is None:
            return
        call, leg = entry
        dialog = leg.dialog
        if dialog is None:
            return
        dialog.receive_request(request)
        if request.cseq is not None:  # its 2xx is no longer retransmitted (RFC 6026 §8.1)
            self.timers.cancel(call, f"2xx-{leg.side.value}-{request.cseq.number}")
        pending = call.deferred_ack
        other = call.other(leg)
        if pending is not None and other is not None:
            call.deferred_ack = None
            target_dialog, response = pending
            try:
                body = crossing_body(request, "ACK", other.origin)
            except (BodyRefused, ParseError):
                body = crossing_body(Response(200, ""), "ACK", other.origin)
            ack = target_dialog.create_ack(response, headers=body.headers(), body=body.data)
            self._deliver(call, other, ack, "answer", lambda: self._send(None, other, ack))
