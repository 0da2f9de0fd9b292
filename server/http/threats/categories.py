"""HTTP side of the admin's category list: read it, add a category or switch one on or off.
The citizen's list of active categories is ``public.categories``."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from server.actions.access import ADMIN_ROLES
from server.actions.threats.categories import all_categories, do_save_category
from server.db.models import ReportCategory
from server.http.auth.access import require_staff, require_staff_change
from server.http.bodies import read_json
from server.http.keys import SERVICES_KEY
from server.http.openapi import documented, staff, staff_change

routes = web.RouteTableDef()


class CategoryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    code: str = Field(max_length=64)
    active: bool = True


class CategoryView(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    active: bool
    position: int


class CategoryList(BaseModel):
    """Every category, active or not, in the citizens' order."""

    model_config = ConfigDict(extra="forbid")
    categories: list[CategoryView]


def _category(category: ReportCategory) -> dict[str, object]:
    return {"code": category.code, "active": category.active, "position": category.position}


@routes.get("/api/admin/report-categories")
@documented(replies={200: CategoryList}, access=staff(ADMIN_ROLES))
async def admin_categories(request: web.Request) -> web.StreamResponse:
    require_staff(request, ADMIN_ROLES)
    rows = await all_categories(request.app[SERVICES_KEY])
    return web.json_response({"categories": [_category(c) for c in rows]})


@routes.post("/api/admin/report-categories")
@documented(body=CategoryBody, replies={200: CategoryView}, access=staff_change(ADMIN_ROLES))
async def admin_save_category(request: web.Request) -> web.StreamResponse:
    staff = require_staff_change(request, ADMIN_ROLES)
    body: CategoryBody = await read_json(request, CategoryBody)
    category = await do_save_category(
        request.app[SERVICES_KEY], staff=staff, code=body.code, active=body.active
    )
    return web.json_response(_category(category))
