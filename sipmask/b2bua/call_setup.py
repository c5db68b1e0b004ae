"""Call set-up: a new INVITE from a trunk is bound (store lookup, platform hooks), routed
to the callee's destinations, and the B leg is built (never copied) and sent; responses to
it are relayed to the caller (18x on one early dialog, forks mapped onto it), the first 2xx
is ACKed and relayed, failures fail over to the next destination (408/5xx before any
ringing), are answered with credentials (401/407) or a larger Min-SE (422), or are relayed
mapped (`map_failure`).
"""

from __future__ import annotations

from .._core import Request, Response
from ..errors import LocalProtocolError, ParseError
from ..sip.dialog import Dialog
from ..sip.events import RequestReceived
from ..sip.transaction import client_key
from ..store.model import Binding
from .actions import RouteCall
from .call import Call, Phase, Side, new_branch, new_token
from .core import (
    FAILOVER_STATUSES,
    STATUS_OUTCOME,
    host_of,
    log,
    map_failure,
)
from .digest import DigestError, authorization, parse_challenge
from .masking import (
    SIPMASK_METHODS,
    BodyRefused,
    crossing_body,
    crossing_headers,
    has_sdp,
    reason_value,
    supported_tags,
)
from .routing import Target, TrunkState
from .session_timers import SessionTimers
from .table import CallEvent


class CallSetup(SessionTimers):
    """The INVITE that makes a call, on both legs."""

    def _new_call(self, event: RequestReceived, trunk: TrunkState) -> None:
        request = event.request
        if (request.max_forwards if request.max_forwards is not None else 70) <= 1:
            self._reject(event, 483)  # the B leg would carry Max-Forwards 0 (RFC 3261 §16.6)
            return
        identities = self._identities(event, trunk)
        if identities is None:
            self.stats.calls_rejected += 1
            self._reject(event, self.config.calls.reject_status)
            return
        if self.draining or not trunk.admit(self._now()):
            self.stats.calls_rejected += 1
            retry = self.config.sip.retry_after
            self._reject(event, 503, [("Retry-After", str(retry))] if retry else [])
            return
        dialled, caller = identities
        transport = (request.top_via.transport.lower() if request.top_via else "udp")
        transport = transport if transport in ("udp", "tcp", "tls") else "udp"
        assert request.call_id is not None
        try:
            a = self._make_leg(Side.CALLER, event.source, transport, request.call_id, dialled)
        except LookupError:  # its Via names a transport sipmask has no listener for
            self._reject(event, 400)
            return
        a.peer = event.source  # requests to the caller go where it sent from (NAT-safe)
        try:
            # Made now, not at the first 18x: a caller whose Contact or Record-Route cannot
            # make a dialog is refused before any callee is called (else the callee's answer
            # would have nowhere to go, and its leg no end).
            a.dialog = Dialog.from_uas(request, a.local_tag, a.contact, via=a.via,
                                       new_branch=new_branch)
        except (ParseError, LocalProtocolError):
            self.stats.calls_rejected += 1
            self._reject(event, 400)
            return
        call = Call(
            id=new_token(6),
            trunk=trunk,
            a_invite=request,
            a_key=event.key,
            a=a,
            dialled=dialled,
            caller=caller,
            started_at=self.clock(),
        )
        call.late_offer = not has_sdp(request)
        trunk.active_calls += 1
        call.counted = True
        self.calls.add(call)
        self.stats.calls_started += 1
        self.stats.calls_active += 1
        self._by_server[event.key] = call
        self._by_leg[(a.call_id, a.local_tag)] = (call, a)
        self.actions.append(RouteCall(call))

    # The binding lookup, the platform's hooks and DNS are the shell's (`shell.py`, for
    # `RouteCall`); they come back here.

    def _refuse(self, call: Call, status: int, cause: str) -> None:
        """The call is refused before any callee is tried (no binding, intercepted, loop)."""
        if call.ended:
            return
        self.stats.calls_rejected += 1
        self._fail(call, status, "refused", cause)

    def _routed(self, call: Call, binding: Binding | None, targets: list[Target]) -> None:
        """The call's destinations are known (`binding` is None for a call sent to a fixed
        URI): ring the first live one."""
        if call.ended:
            return  # cancelled while looking up
        call.binding = binding
        call.targets = self._live_first(targets) if binding is not None else targets
        if not call.targets:
            self._fail(call, 480, "failed", "no-route")
            return
        self._arm_ringing(call, binding)
        self._start_b(call)

    def _live_first(self, targets: list[Target]) -> list[Target]:
        now = self._now()
        live = [t for t in targets if self._down.get(t.address, 0.0) <= now]
        return live + [t for t in targets if t not in live]

    def _arm_ringing(self, call: Call, binding: Binding | None) -> None:
        calls = self.config.calls
        ring = (binding.ring_timeout if binding and binding.ring_timeout else calls.ring_timeout)
        self._later(call, "ring", ring, lambda: self.call_event(call, CallEvent.RING_TIMEOUT))
        self._later(call, "timer_c", calls.timer_c,
                    lambda: self.call_event(call, CallEvent.TIMER_C))

    def _presented(self, call: Call) -> str:
        return call.binding.caller_id if call.binding is not None else call.dialled

    def _start_b(self, call: Call) -> None:
        try:
            self._start_b_on(call, call.targets[call.target_index])
        except LookupError:  # no listener of that transport to send from
            log.warning("call %s: no %s listener for %s", call.id,
                        call.targets[call.target_index].transport,
                        call.targets[call.target_index].uri_host)
            if call.target_index + 1 < len(call.targets):
                call.target_index += 1
                self._start_b(call)
            else:
                self._fail(call, 500, "failed", "no-transport")

    def _start_b_on(self, call: Call, target: Target) -> None:
        presented = self._presented(call)
        if call.b is None:
            call.b = self._make_leg(Side.CALLEE, target.address, target.transport,
                                    self._new_call_id(), presented)
            if self.media is not None:  # renumbered payload types need anchored media
                call.b.origin.pair(call.a.origin)
            self._by_leg[(call.b.call_id, call.b.local_tag)] = (call, call.b)
        else:  # failover: same Call-ID and tag, the next destination's transport
            via, contact = self._via_and_contact(target.transport, target.address, presented)
            call.b.peer, call.b.transport = target.address, target.transport
            call.b.via, call.b.contact = via, contact
        b = call.b
        b.server_name = host_of(target.uri_host)
        invite = self._build_b_invite(call, target, presented)
        if invite is None:
            return
        call.b_invite = invite
        call.phase = Phase.CALLING
        call.saw_provisional = False
        call.b_key = client_key(invite)
        self._deliver(call, b, invite, "offer", lambda: self._send(call, b, invite))

    def _build_b_invite(self, call: Call, target: Target, presented: str) -> Request | None:
        b = call.b
        assert b is not None
        a_invite = call.caller_invite
        callee = call.binding.callee.key if call.binding is not None else None
        if target.fixed_uri is not None:
            uri = target.fixed_uri
        else:
            suffix = "" if target.transport == "udp" else f";transport={target.transport}"
            user = callee if callee is not None and "@" not in callee else (
                callee.split("@", 1)[0] if callee else call.dialled)
            phone = ";user=phone" if user.startswith("+") else ""
            uri = f"sip:{user}@{target.uri_host}{suffix}{phone}"
        to_uri = uri.split(";", 1)[0] if target.fixed_uri is None else uri
        local_host = self._local(target.transport, target.address)
        display = self.config.masking.display_name
        from_value = (f'"{display}" ' if display else "") + f"<sip:{presented}@{local_host}>"
        try:
            body = crossing_body(a_invite, "INVITE", b.origin)
        except (BodyRefused, ParseError):
            self._fail(call, 488, "failed", "sdp")
            return None
        # Never more than 70 (RFC 3261 §8.1.1.6): a huge value could carry digits across.
        mf = min(a_invite.max_forwards if a_invite.max_forwards is not None else 70, 70)
        cseq = 1 if call.b_invite is None else (call.b_invite.cseq.number + 1)  # type: ignore[union-attr]
        fields = [
            ("Via", f"{b.via};branch={new_branch()}"),
            ("Max-Forwards", str(mf - 1)),
            ("From", f"{from_value};tag={b.local_tag}"),
            ("To", f"<{to_uri}>"),
            ("Call-ID", b.call_id),
            ("CSeq", f"{cseq} INVITE"),
            ("Contact", b.contact),
            ("Allow", ", ".join(SIPMASK_METHODS)),
        ]
        crossing = [h for h in crossing_headers(a_invite, self.allow) if h[0] != "Supported"]
        supported = set(supported_tags(a_invite)) | {"100rel", "timer"}
        fields.append(("Supported", ", ".join(sorted(supported))))
        if not any(name == "Session-Expires" for name, _ in crossing):
            crossing.append(("Session-Expires", str(self.config.calls.session_expires)))
        if call.min_se:  # retried after a 422 (RFC 4028 §7.4)
            crossing = [(n, v) for n, v in crossing if n not in ("Session-Expires", "Min-SE")]
            interval = max(call.min_se, self.config.calls.session_expires)
            crossing += [("Session-Expires", str(interval)), ("Min-SE", str(call.min_se))]
        fields += crossing
        trunk = self.router.by_name.get(target.trunk or "")
        if trunk is not None and trunk.config.assert_identity:
            fields.append(("P-Asserted-Identity", f"<sip:{presented}@{local_host};user=phone>"))
        fields += self._ua_header
        fields += call.auth_headers
        fields += body.headers()
        return Request("INVITE", uri, fields, body.data)

    def _b_invite_response(self, call: Call, response: Response, retransmission: bool) -> None:
        status = response.status
        b = call.b
        assert b is not None and call.b_invite is not None
        if status == 100:
            return
        dialog = None
        unusable = False
        if status < 300:
            try:
                dialog = call.b_dialogs.receive_response(
                    call.b_invite, response, new_branch=new_branch, via=b.via
                )
            except (ParseError, LocalProtocolError):
                dialog = None
                if status >= 200:
                    # A 2xx whose Contact or Record-Route is malformed still needs its ACK
                    # (or the callee retransmits it and the caller rings on): a dialog
                    # aimed at the INVITE's own Request-URI is made to ACK and end it.
                    dialog = self._fallback_dialog(call, response)
                    unusable = True
        if status < 200:
            self.call_event(call, CallEvent.B_PROVISIONAL, response, dialog)
        elif status < 300:
            self.call_event(call, CallEvent.B_ANSWERED, response, dialog, retransmission,
                            unusable)
        else:
            self.call_event(call, CallEvent.B_FAILED, response)

    def _fallback_dialog(self, call: Call, response: Response) -> Dialog | None:
        b, invite = call.b, call.b_invite
        assert b is not None and invite is not None
        patched = response.copy()
        patched.remove_header("record-route")
        patched.set_header("Contact", f"<{invite.uri}>")
        try:
            return call.b_dialogs.receive_response(invite, patched, new_branch=new_branch,
                                                   via=b.via)
        except (ParseError, LocalProtocolError):
            return None

    def _b_provisional(self, call: Call, response: Response, dialog: Dialog | None) -> None:
        call.saw_provisional = True
        if not call.ended and call.phase is Phase.CALLING:
            self._later(call, "timer_c", self.config.calls.timer_c,
                        lambda: self.call_event(call, CallEvent.TIMER_C))
        rseq = response.header("rseq")
        if dialog is not None and rseq is not None and "100rel" in [
            t.strip().lower() for t in response.headers("require")
        ]:
            cseq = response.cseq
            assert cseq is not None
            prack = dialog.create_request(
                "PRACK", headers=[("RAck", f"{rseq.strip()} {cseq.number} INVITE")]
            )
            assert call.b is not None
            self._send(call, call.b, prack)
        if call.a_final_sent or call.ended:
            return
        status = response.status if response.status in (180, 181, 182, 183) else 183
        try:
            body = crossing_body(response, "INVITE", call.a.origin)
        except (BodyRefused, ParseError):
            body = crossing_body(Response(status, ""), "INVITE", call.a.origin)
        a_dialog = self._a_dialog(call)
        if a_dialog is None:
            return
        relayed = a_dialog.create_response(
            call.caller_invite, status, headers=body.headers(), body=body.data
        )
        kind = "offer" if call.late_offer else "answer"
        self._deliver(call, call.a, relayed, kind, lambda: self._respond(call.caller_key, relayed))

    def _b_answered(
        self, call: Call, response: Response, dialog: Dialog | None, retransmission: bool,
        unusable: bool = False,
    ) -> None:
        b = call.b
        assert b is not None
        if dialog is None:
            return
        answered = b.dialog
        if retransmission or answered is dialog:
            ack = dialog.ack_for_retransmitted_2xx(response)
            if ack is not None:
                self._send(None, b, ack)
            return
        if answered is not None or call.ended or call.a_final_sent:
            # A second fork answered, or the caller is gone (CANCEL crossed the 200): ACK it
            # and end it at once (RFC 3261 §13.2.2.4, §9.1).
            if dialog.is_terminated:  # an early dialog ended when the first fork answered
                assert call.b_invite is not None
                try:
                    dialog = Dialog.from_uac(call.b_invite, response, new_branch=new_branch,
                                             via=b.via)
                except (ParseError, LocalProtocolError):
                    return
            self._send(None, b, dialog.create_ack(response))
            self._send(None, b, dialog.create_request("BYE"))
            dialog.terminate()
            return
        call.b_dialogs.terminate_early(dialog.id.call_id, dialog.id.local_tag)
        dialog.confirm()
        a_dialog = self._a_dialog(call)
        body = None
        if not unusable and a_dialog is not None:
            try:
                body = crossing_body(response, "INVITE", call.a.origin)
            except (BodyRefused, ParseError):
                body = None
        if a_dialog is None or body is None:
            # The callee answered but the call cannot go on (a malformed Contact, Record-
            # Route or SDP): its leg is ACKed and ended, the caller gets a failure.
            status, cause = (502, "callee-contact") if unusable else (488, "callee-sdp")
            self._send(None, b, dialog.create_ack(response))
            self._send(None, b, dialog.create_request(
                "BYE", headers=[("Reason", f"SIP;cause={status}"), *self._ua_header]))
            dialog.terminate()
            self._fail(call, status, "failed", cause)
            return
        b.dialog = dialog
        if call.late_offer:
            call.deferred_ack = (dialog, response)  # the ACK carries the caller's answer
        else:
            self._send(None, b, dialog.create_ack(response))
        headers = body.headers() + [("Allow", ", ".join(SIPMASK_METHODS))]
        headers += self._timer_headers_for_a(call)
        final = a_dialog.create_response(call.caller_invite, 200, headers=headers, body=body.data)
        call.a_final_sent = True
        call.phase = Phase.ANSWERED
        call.answered_at = self.clock()
        self.stats.calls_answered += 1
        self.timers.cancel(call, "ring")
        self.timers.cancel(call, "timer_c")

        def send_final() -> None:
            self._respond(call.caller_key, final)
            self._retransmit_2xx(call, call.a, call.caller_key, final)

        self._deliver(call, call.a, final, "offer" if call.late_offer else "answer", send_final)
        limit = call.binding.call_time_limit if call.binding else None
        limit = limit or self.config.calls.max_duration
        if limit:
            self._later(call, "limit", limit,
                        lambda: self.call_event(call, CallEvent.CALL_LIMIT))
        self._session_timer_from_2xx(call, b, response)

    def _b_failed(self, call: Call, response: Response) -> None:
        status = response.status
        if call.ended or call.a_final_sent:
            if not call.ended and call.b is not None and call.b.dialog is None:
                self._finish(call)
            return
        if status in (401, 407) and self._answer_challenge(call, response):
            return
        if status == 422 and self._retry_with_min_se(call, response):
            return
        if (
            status in FAILOVER_STATUSES
            and not call.saw_provisional
            and call.target_index + 1 < len(call.targets)
        ):
            call.target_index += 1
            self._start_b(call)
            return
        mapped = map_failure(status)
        outcome = STATUS_OUTCOME.get(mapped, "failed")
        reason = reason_value(response)
        self._fail(call, mapped, outcome, str(status), reason=reason)

    def _answer_challenge(self, call: Call, response: Response) -> bool:
        """Retry the B leg INVITE with credentials when its trunk has some (once per call)."""
        target = call.targets[call.target_index] if call.targets else None
        trunk = self.router.by_name.get(target.trunk or "") if target is not None else None
        credentials = trunk.config.digest if trunk is not None else None
        if credentials is None or call.auth_tried or call.b_invite is None:
            return False
        proxy = response.status == 407
        challenge = response.header("proxy-authenticate" if proxy else "www-authenticate")
        if challenge is None:
            return False
        try:
            if credentials.realm is not None and (
                parse_challenge(challenge)["realm"] != credentials.realm
            ):
                return False
            value = authorization(challenge, "INVITE", call.b_invite.uri,
                                  credentials.username, credentials.password)
        except DigestError as exc:
            log.warning("call %s: cannot answer the %s challenge: %s", call.id,
                        trunk.name if trunk else "-", exc)
            return False
        call.auth_tried = True
        call.auth_headers = (("Proxy-Authorization" if proxy else "Authorization", value),)
        self._start_b(call)
        return True

    def _retry_with_min_se(self, call: Call, response: Response) -> bool:
        """RFC 4028 §7.4: a 422 names the smallest interval the callee accepts (Min-SE);
        the INVITE is retried with it, while it grows (a callee cannot loop us)."""
        value = (response.header("min-se") or "").split(";", 1)[0].strip()
        if not value.isdigit() or int(value) <= call.min_se or int(value) > 86400:
            return False
        call.min_se = int(value)
        self._start_b(call)
        return True
