"""Video recording sessions: a vehicle's cameras recording for a while after an incident.

A session is a row that says which cameras record, since when and until when; starting one for
a vehicle that is already recording extends that session instead of opening a second one, as a
recorder with one stream per camera must. A vehicle whose cameras are offline fails with
``CameraUnavailable`` (a workflow may retry it); injected faults drive the retry paths.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine as SAEngine

from statelang import HandlerError

from .tables import transaction, video_sessions

DEFAULT_CAMERAS = ["front", "cabin", "rear"]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


class VideoRecorder:
    """``VideoRecorder(sqlalchemy_engine, now=clock.now)``."""

    def __init__(self, engine: SAEngine, now: Callable[[], datetime] | None = None):
        self.engine = engine
        self.now = now or _utcnow
        self.offline: set[str] = set()
        self._faults: list[str] = []
        self._guard = threading.Lock()

    def fail_next(self, times: int = 1, error: str = "RecorderUnavailable") -> None:
        with self._guard:
            self._faults.extend([error] * times)

    def start_session(self, vehicle_id: str, incident_id: str | None = None, duration_seconds: int = 900,
                      cameras: list[str] | None = None, dedup_key: str | None = None) -> dict:
        """Start (or extend) the vehicle's recording; returns the session."""
        with self._guard:
            fault = self._faults.pop(0) if self._faults else None
        if fault:
            raise HandlerError(fault, f"The recorder did not answer for {vehicle_id}")
        if not vehicle_id:
            raise HandlerError("InvalidRequest", "vehicleId is required")
        if vehicle_id in self.offline:
            raise HandlerError("CameraUnavailable", f"The cameras of {vehicle_id} are offline")
        now = self.now()
        until = now + timedelta(seconds=duration_seconds)
        with transaction(self.engine) as conn:
            if dedup_key:
                seen = conn.execute(select(video_sessions).where(video_sessions.c.dedup_key == dedup_key)).first()
                if seen is not None:
                    return self._view(seen._mapping)
            live = conn.execute(select(video_sessions).where(
                video_sessions.c.vehicle_id == vehicle_id, video_sessions.c.status == "recording")).first()
            if live is not None and _aware(live.stop_at) > now:
                stop_at = max(_aware(live.stop_at), until)
                conn.execute(update(video_sessions).where(video_sessions.c.id == live.id).values(stop_at=stop_at))
                return dict(self._view(live._mapping), stopAt=stop_at.isoformat(), extended=True)
            sid = "VID-" + uuid.uuid4().hex[:12]
            row = {"id": sid, "vehicle_id": vehicle_id, "incident_id": incident_id,
                   "cameras": cameras or DEFAULT_CAMERAS, "status": "recording", "started_at": now,
                   "stop_at": until, "dedup_key": dedup_key}
            conn.execute(insert(video_sessions).values(**row))
        return self._view(row)

    @staticmethod
    def _view(row) -> dict:
        return {"sessionId": row["id"], "vehicleId": row["vehicle_id"], "incidentId": row["incident_id"],
                "cameras": list(row["cameras"]), "status": row["status"],
                "startedAt": _aware(row["started_at"]).isoformat(), "stopAt": _aware(row["stop_at"]).isoformat(),
                "extended": False}

    def stop_session(self, session_id: str) -> dict:
        with transaction(self.engine) as conn:
            row = conn.execute(select(video_sessions).where(video_sessions.c.id == session_id)).first()
            if row is None:
                raise HandlerError("SessionNotFound", session_id)
            conn.execute(update(video_sessions).where(video_sessions.c.id == session_id)
                         .values(status="stopped", stopped_at=self.now()))
        return dict(self._view(row._mapping), status="stopped")

    def sessions(self, vehicle_id: str | None = None) -> list[dict]:
        q = select(video_sessions).order_by(video_sessions.c.started_at)
        if vehicle_id:
            q = q.where(video_sessions.c.vehicle_id == vehicle_id)
        with transaction(self.engine) as conn:
            return [self._view(r._mapping) for r in conn.execute(q)]
