"""The images page: the fleet's running-image inventory (repository, tag, digest, where, since
when) and the loaded advisories, with links to their findings (KM-621, KM-622)."""

from __future__ import annotations

import fnmatch

from flask import abort, render_template, request

from ingest.context import ctx
from ingest.web.filters import PAGE_SIZE, FilterError, page_number
from ingest.web.security import login_required
from store.advisories import list_advisories
from store.images import image_uses
from store.search import SearchTimeout

DRIFT_RULE = "KM-621"
ADVISORY_RULE = "KM-622"


@login_required
def images_page() -> tuple[str, int]:
    """`?cluster=` and `?repository=` (a glob over the repository or the image) filter."""
    cluster_id = request.args.get("cluster", "").strip()[:63]
    pattern = request.args.get("repository", "").strip()[:300]
    try:
        page = page_number(request.args)
    except FilterError as problem:
        abort(400, description=str(problem))
    error = None
    status = 200
    rows = []
    with ctx().sessions() as db:
        advisories = list_advisories(db)
        try:
            uses = image_uses(
                db,
                cluster_ids=[cluster_id] if cluster_id else None,
                timeout_seconds=ctx().settings.search_timeout_seconds,
            )
        except SearchTimeout as problem:
            uses, error, status = [], str(problem), 503
    for use in uses:
        row = use.as_json()
        if pattern and not (
            fnmatch.fnmatchcase(row["repository"], pattern)
            or fnmatch.fnmatchcase(use.image, pattern)
        ):
            continue
        rows.append({**row, "ref": use.workload.key})
    start = (page - 1) * PAGE_SIZE
    return render_template(
        "web/images.html",
        rows=rows[start : start + PAGE_SIZE],
        total=len(rows),
        page=page,
        pages=max(1, -(-len(rows) // PAGE_SIZE)),
        cluster_id=cluster_id,
        pattern=pattern,
        advisories=[{**a.record, "loaded_at": a.loaded_at} for a in advisories],
        drift_rule=DRIFT_RULE,
        advisory_rule=ADVISORY_RULE,
        error=error,
    ), status
