"""What the threat map's public routes take in their query strings and answer, as models for
the API's document (server/http/openapi.py). The answers are shaped by the actions
(server/actions/threats/views.py, clusters.py, stats.py); every model forbids what it does not
declare, so an answer that gains a field fails the schema check until the model has it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from server.actions.threats.alerts import MAX_ALERTS
from server.actions.threats.clusters import MAX_ZOOM
from server.actions.threats.public import MAX_OFFSET, MAX_PAGE
from server.core.errors import ErrorCode
from server.core.events import StatusName


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- query strings ------------------------------------------------------------------------------


class MapFilters(BaseModel):
    """The filters every public view of the reports takes."""

    status: str | None = Field(default=None, description="Statuses, comma-separated")
    category: str | None = Field(default=None, description="A category's code")
    since: str | None = Field(default=None, description="ISO 8601 date or time")
    until: str | None = Field(default=None, description="ISO 8601 date or time")
    bbox: str | None = Field(default=None, description="west,south,east,north in degrees")


class MapPage(MapFilters):
    limit: int | None = Field(default=None, ge=1, le=MAX_PAGE)
    offset: int | None = Field(default=None, ge=0, le=MAX_OFFSET)


class ClusterQuery(MapFilters):
    bbox: str = Field(description="west,south,east,north in degrees")
    zoom: int = Field(ge=0, le=MAX_ZOOM)


class CsvQuery(MapFilters):
    plain: Literal["1"] | None = Field(
        default=None, description="1: without the byte order mark spreadsheets need"
    )


class NearbyQuery(BaseModel):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    category: str


class AlertsQuery(BaseModel):
    limit: int | None = Field(default=None, ge=1, le=MAX_ALERTS)
    lang: Literal["en", "ru", "kk", "pl"] | None = None


class AlertQuery(BaseModel):
    lang: Literal["en", "ru", "kk", "pl"] | None = None


# --- answers ------------------------------------------------------------------------------------


class Category(Strict):
    code: str


class Categories(Strict):
    """The active categories, in the admin's order."""

    categories: list[Category]


class ReportCreated(Strict):
    """The new report and the author's private follow link."""

    id: int
    status: StatusName
    follow_url: str


class NearbyReport(Strict):
    id: int
    category: str
    status: StatusName
    description: str
    created_at: datetime
    confirmations: int
    distance_m: float
    lat: float
    lon: float


class Nearby(Strict):
    """Open reports of the kind near the point: confirm one rather than send another."""

    nearby: list[NearbyReport]


class DuplicateDetail(Strict):
    code: Literal[ErrorCode.POSSIBLE_DUPLICATE]
    message: str


class PossibleDuplicate(Strict):
    """Not stored: reports of this kind are open nearby; confirm one, or send again with
    ``duplicate_ok=1``."""

    error: DuplicateDetail
    nearby: list[NearbyReport]


class Confirmed(Strict):
    """The report's count of "me too" after this one."""

    id: int
    confirmations: int


class Point(Strict):
    type: Literal["Point"]
    coordinates: list[float] = Field(min_length=2, max_length=2, description="lon, lat")


class PublicReport(Strict):
    id: int
    category: str
    status: StatusName
    description: str
    created_at: datetime
    updated_at: datetime
    confirmations: int
    public_note: str | None
    photos: list[str]
    days: list[str]
    time_of_day: str
    overdue_read: bool
    overdue_verify: bool


class ReportFeature(Strict):
    type: Literal["Feature"]
    id: int
    geometry: Point
    properties: PublicReport


class ReportCollection(Strict):
    """A page of reports, newest first, as GeoJSON (RFC 7946); ``next``, the query of the page
    after, while there is one."""

    type: Literal["FeatureCollection"]
    features: list[ReportFeature]
    next: str | None = None


class Cluster(Strict):
    cluster: Literal[True]
    count: int
    statuses: dict[str, int]
    bounds: list[list[float]] = Field(description="[[south, west], [north, east]]")


class ClusterFeature(Strict):
    type: Literal["Feature"]
    geometry: Point
    properties: Cluster


class ClusterCollection(Strict):
    """The view's cells: a report alone in its cell as itself, else a cluster; ``total`` and
    ``bounds``, of every report the filters take, in view or not."""

    type: Literal["FeatureCollection"]
    features: list[ReportFeature | ClusterFeature]
    zoom: int
    total: int
    bounds: list[list[float]] | None


class FollowedStep(Strict):
    status: str | None
    public_note: str | None
    at: datetime


class FollowedReport(Strict):
    """What the author's private link shows: the status, the police's public notes, and
    whether an officer invites them to a video call."""

    id: int
    category: str
    status: StatusName
    public_note: str | None
    created_at: datetime
    invited: bool
    history: list[FollowedStep]


class NamedArea(Strict):
    """A district of ``STATS_AREAS_FILE``."""

    area: str
    named: Literal[True]
    count: int


class GridArea(Strict):
    """A grid cell, for the reports outside every named district."""

    area: str
    named: Literal[False]
    lat: float
    lon: float
    count: int


class MapStats(Strict):
    """The statistics page's numbers, over every report the public may see; no share
    (``confirmed_pct`` null) below ``min_reports_for_share`` reports."""

    total: int
    confirmed: int
    confirmed_pct: float | None
    min_reports_for_share: int
    by_category: dict[str, int]
    by_status: dict[str, int]
    by_month: dict[str, int]
    by_area: list[NamedArea | GridArea] = Field(description="The busiest first")
    areas_named: bool
    heat: list[list[Any]] = Field(description="[lat, lon, confirmed reports]")
