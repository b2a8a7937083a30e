"""The admin pages (Flask + Jinja, server-rendered, no scripts): `make_blueprint()` builds them.

The ingest factory registers the blueprint (`app.register_blueprint(web.make_blueprint())`);
it reads settings and the session factory from the app's `IngestContext`. Optional wiring by
the composition root, through `IngestContext.extras`:

- `rule_info`: `callable(rule_id) -> contracts.findings.RuleInfo | None` (the rule page's
  what/why/how-to-fix; ingest may not import the rules package itself);
- `rule_doc`: `callable(rule_id) -> str | None`, the rule's Markdown docstring (rendered on
  the rule page with raw HTML disabled);
- `object_violations`: `callable(manifest) -> list of {rule_id, title, severity, path}`, the
  object rules' violations of one manifest (the diff page compares two versions with it);
- `flower_url`: base URL of Flower, for links from scan runs to their task.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Flask, g
from flask.blueprints import BlueprintSetupState

from ingest.context import EXTENSION
from ingest.web import deliveries, images, security, signin, views

ROUTES: tuple[tuple[str, str, Any, tuple[str, ...]], ...] = (
    ("/login", "login", signin.login, ("GET", "POST")),
    ("/logout", "logout", signin.logout, ("POST",)),
    ("/", "fleet", views.fleet, ("GET",)),
    ("/findings", "findings", views.findings, ("GET",)),
    ("/clusters/<cluster_id>", "cluster_page", views.cluster_page, ("GET",)),
    ("/clusters/<cluster_id>/rescan", "rescan", views.rescan, ("POST",)),
    ("/clusters/<cluster_id>/find", "find_resource", views.find_resource, ("GET",)),
    ("/clusters/<cluster_id>/timeline", "cluster_timeline", views.cluster_timeline, ("GET",)),
    ("/clusters/<cluster_id>/objects/<int:object_id>", "resource", views.resource, ("GET",)),
    ("/clusters/<cluster_id>/objects/<int:object_id>/diff", "diff", views.diff, ("GET",)),
    ("/rules/<rule_id>", "rule", views.rule, ("GET",)),
    ("/exemptions", "exemptions", views.exemptions, ("GET",)),
    ("/exemptions", "exemption_create", views.exemption_create, ("POST",)),
    (
        "/exemptions/<int:exemption_id>/expire",
        "exemption_expire",
        views.exemption_expire,
        ("POST",),
    ),
    ("/scans", "scans", views.scans, ("GET",)),
    ("/deliveries", "deliveries", deliveries.deliveries, ("GET",)),
    (
        "/deliveries/<int:delivery_id>/resend",
        "delivery_resend",
        deliveries.delivery_resend,
        ("POST",),
    ),
    ("/search", "search", views.search, ("GET",)),
    ("/images", "images", images.images_page, ("GET",)),
    ("/audit", "audit", views.audit, ("GET",)),
    # Last: any other URL under /admin is an HTML 404 page (not the API's JSON problem).
    ("/<path:unknown>", "unknown", views.unknown, ("GET", "POST", "PUT", "PATCH", "DELETE")),
)


def _configure(state: BlueprintSetupState) -> None:
    settings = state.app.extensions[EXTENSION].settings
    security.configure_sessions(
        cast(Flask, state.app),
        secret_key=settings.secret_key,
        secure=settings.public_url.startswith("https://"),
    )


def _template_globals() -> dict[str, Any]:
    return {"csrf_token": security.csrf_token, "user": g.get("user")}


def make_blueprint() -> Blueprint:
    """A fresh blueprint of the admin pages under /admin (one per app; no shared state)."""
    blueprint = Blueprint(
        "web",
        __name__,
        url_prefix="/admin",
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    blueprint.record_once(_configure)
    blueprint.before_request(security.load_user)
    blueprint.before_request(security.check_csrf)
    blueprint.after_request(security.add_security_headers)
    blueprint.context_processor(_template_globals)
    for code in (400, 403, 404, 405):
        blueprint.register_error_handler(code, views.error_page)
    for rule, endpoint, view, methods in ROUTES:
        blueprint.add_url_rule(rule, endpoint, view, methods=list(methods))
    return blueprint
