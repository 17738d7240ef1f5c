"""The HTML pages (a Blueprint): /about (rules and thresholds) and /taper (a printable taper plan)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, request

from cds_service.clinical.taper import plan_taper, regimens_from_params
from cds_service.errors import BadRequest, TaperError
from cds_service.pages.about import about_page
from cds_service.pages.taper import render_page
from cds_service.protocol.http import state

bp = Blueprint("pages", __name__)


@bp.get("/about")
def about() -> Response:
    return Response(about_page(state().assessor), mimetype="text/html")


@bp.get("/taper")
def taper() -> Response:
    assessor = state().assessor
    args = request.args
    try:
        start = date.fromisoformat(args.get("start") or date.today().isoformat())
    except ValueError:
        raise BadRequest("start must be a date (YYYY-MM-DD).", "url.start") from None
    try:
        regimens = regimens_from_params(args.getlist("o"), assessor.knowledge, assessor.profile)
        plan = plan_taper(regimens, start, args.get("strategy", "mr-first"), args.get("pace", "standard"))
    except TaperError as exc:
        raise BadRequest(str(exc), "url.o") from None
    return Response(render_page(plan), mimetype="text/html")
