"""KMZB categories: stored as codes, named through the i18n catalogues (``category.<code>``).

The admin adds them and switches them on and off; a citizen may choose only an active one.
"""

from __future__ import annotations

import re

from sqlmodel import col, select

from server.actions.staff_sessions import StaffContext
from server.core.errors import AppError, ErrorCode
from server.core.services import Services
from server.db.models import ReportCategory

# KMZB's published list, in its order (the migration seeds the same codes).
DEFAULT_CATEGORY_CODES = (
    "vandalism",
    "unguarded_bathing_area",
    "illegal_dumping",
    "minors_at_risk",
    "poaching",
    "dangerous_water_place",
    "dangerous_venue",
    "illegal_tree_felling",
    "illegal_car_racing",
    "illegal_parking",
    "unguarded_railway_crossing",
    "bad_road_infrastructure",
    "greenery_destruction",
    "homeless_needing_help",
    "quad_bikes_in_forest",
    "speeding",
    "alcohol_in_prohibited_place",
    "drug_use",
    "stray_dogs",
    "grass_burning",
    "wild_animal_road_incident",
    "animal_cruelty",
    "bad_traffic_organisation",
    "begging",
)
CODE_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


async def all_categories(services: Services) -> list[ReportCategory]:
    """Every category, active or not, in the list's order: the admin's view."""
    async with services.db.session() as session:
        return list(
            (
                await session.exec(
                    select(ReportCategory).order_by(
                        col(ReportCategory.position), col(ReportCategory.code)
                    )
                )
            ).all()
        )


async def active_codes(services: Services) -> list[str]:
    """The categories a citizen may choose now, in the list's order."""
    return [c.code for c in await all_categories(services) if c.active]


async def check_category(services: Services, code: str) -> str:
    """``code`` if it names an active category; otherwise a 422 that says so."""
    if not CODE_RE.match(code):
        raise AppError(ErrorCode.UNKNOWN_CATEGORY, "Unknown category")
    async with services.db.session() as session:
        category = await session.get(ReportCategory, code)
    if category is None or not category.active:
        raise AppError(ErrorCode.UNKNOWN_CATEGORY, "Unknown category")
    return code


async def do_save_category(
    services: Services, *, staff: StaffContext, code: str, active: bool
) -> ReportCategory:
    """Add a category (at the end of the list) or switch one on or off. Never deleted: old
    reports keep their code."""
    if not CODE_RE.match(code):
        raise AppError(
            ErrorCode.BAD_CODE, "A category code is 2-64 lower-case letters, digits or _"
        )
    audit = services.audit
    async with audit.transaction() as session:
        category = await session.get(ReportCategory, code)
        if category is None:
            last = (
                await session.exec(
                    select(ReportCategory).order_by(col(ReportCategory.position).desc()).limit(1)
                )
            ).first()
            category = ReportCategory(
                code=code, position=(last.position + 1) if last else 0, active=active
            )
            action = "report_category_added"
        else:
            category.active = active
            action = "report_category_changed"
        session.add(category)
        await audit.record(
            session,
            actor=staff.username,
            action=action,
            subject=f"category:{code}",
            data={"active": active},
        )
        await session.flush()
        await session.refresh(category)
    return category


async def get_category(services: Services, code: str) -> ReportCategory:
    async with services.db.session() as session:
        category = await session.get(ReportCategory, code)
    if category is None:
        raise AppError(ErrorCode.CATEGORY_NOT_FOUND, "No such category")
    return category
