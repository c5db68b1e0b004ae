"""Call records: one log line per call (numbers masked) and an `Interaction` in the store,
written in batches, and a `call.ended` event for the event stream and the webhooks.
"""

from __future__ import annotations

from ..privacy import mask_party
from ..store.model import Interaction
from .actions import Publish, SaveRecords
from .call import Call
from .core import (
    RECORD_BATCH_DELAY,
    CallControl,
    log,
)


class CallRecords(CallControl):
    """What remains of a call once it ended."""

    def _record(self, call: Call) -> None:
        binding = call.binding
        duration = (
            None if call.answered_at is None else (call.ended_at or 0.0) - call.answered_at
        )
        log.info(
            "call %s %s: caller %s dialled %s, callee %s, cause %s, %s",
            call.id,
            call.status,
            mask_party(call.caller),
            call.dialled,
            mask_party(binding.callee.key) if binding else "-",
            call.cause or "-",
            "not answered" if duration is None else f"{duration:.1f} s answered",
            extra={"fields": {
                "event": "call.ended",
                "call_id": call.id,
                "session_id": binding.session_id if binding else None,
                "outcome": call.status,
                "cause": call.cause,
                "duration": None if duration is None else round(duration, 3),
            }},
        )
        if binding is None:
            return
        record = Interaction(
            id=call.id,
            session_id=binding.session_id,
            caller=binding.caller.key,
            callee=binding.callee.key,
            dialled=call.dialled,
            presented=binding.caller_id,
            started_at=call.started_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            status=call.status,
            cause=call.cause,
            recording=(self.media.recording(call.media_context)
                       if self.media is not None and call.media_context is not None else None),
        )
        self._queue_record(record)
        if self.events is not None:
            self.actions.append(Publish("call.ended", record))

    def _queue_record(self, record: Interaction) -> None:
        """Records are written in batches (one store round trip per `RECORD_BATCH_DELAY`,
        not one per call): on Redis a write per call cost a third of the call rate."""
        self._records.append(record)
        if len(self._records) == 1:
            self.timers.arm(self._own, "records", self._now() + RECORD_BATCH_DELAY,
                            self._flush_records)

    def _flush_records(self) -> None:
        batch, self._records = self._records, []
        if batch:
            self.actions.append(SaveRecords(batch))
