"""An incident's evidence (高空抛物: the facade camera, media links, time, floor band), its hash chain's verdict,
and the evidence package: a zip export, audited, for operators and police (警务).

The export fetches media over HTTP while the route awaits (the event loop goes on serving), writes the zip in a
worker thread, sends it and deletes it: the hub keeps no copy, the audit log keeps its SHA-256 (also in the
`X-Evidence-SHA256` header)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from hub.api.common import READ
from hub.api.deps import ChainDep, EvidenceExporter, ExporterDep, IncidentReader, IncidentStoreDep
from hub.api.guard import GuardedRoute
from hub.api.schemas import ChainVerdictOut, IdPath, IncidentEvidenceOut, errors
from hub.incidents.merge import Incident
from hub.incidents.store import IncidentStore
from hub.users import POLICE

router = APIRouter(prefix="/api", route_class=GuardedRoute, tags=["incidents"])
ZIP = {200: {"content": {"application/zip": {}}, "description": "The evidence package (zip)"}}


def _get(store: IncidentStore, incident_id: str) -> Incident:
    incident = store.get(incident_id)
    if incident is None:
        raise HTTPException(404, f"no incident {incident_id!r}")
    return incident


@router.get("/incidents/{incident_id}/evidence", response_model=IncidentEvidenceOut, responses=READ | errors(404))
async def evidence(incident_id: IdPath, store: IncidentStoreDep, exporter: ExporterDep,
                   user: IncidentReader) -> dict[str, Any]:
    """The incident's evidence as the hub computes it now (null when none of its detections links media or
    carries a start height): per detection the camera, the media links, the time and the floor band. The links
    are personal data: those who may export them (operators, police) see them, viewers and maintenance none."""
    found = exporter.evidence(_get(store, incident_id))
    if found is not None and not (user.can("operator") or user.role == POLICE):
        found = {**found, "detections": [{**d, "media": {}} for d in found["detections"]]}
    return {"incident": incident_id, "evidence": found}


@router.get("/incidents/{incident_id}/chain", response_model=ChainVerdictOut, responses=READ | errors(404))
async def chain(incident_id: IdPath, store: IncidentStoreDep, chains: ChainDep,
                _user: IncidentReader) -> dict[str, Any]:
    """Whether the incident's hash chain holds and the stored incident is what it says (`ok`, `problems`)."""
    return chains.verdict(incident_id, _get(store, incident_id)).to_json()


@router.post("/incidents/{incident_id}/export", response_class=FileResponse,
             responses=ZIP | errors(401, 403, 404, 422))
async def export(incident_id: IdPath, store: IncidentStoreDep, exporter: ExporterDep,
                 user: EvidenceExporter) -> FileResponse:
    """The evidence package: manifest, hash chain and the media that could be fetched (those that could not are
    listed with the reason). Every export is audited: who, when, which incident, the archive's SHA-256."""
    made = await exporter.export(_get(store, incident_id), user, store.get)
    return FileResponse(made.path, media_type="application/zip", filename=made.name,
                        headers={"X-Evidence-SHA256": made.sha256, "X-Evidence-Chain-Head": made.head},
                        background=BackgroundTask(made.remove))
