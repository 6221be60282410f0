"""The OpenAPI document lists exactly the app's routes."""

from __future__ import annotations

import re


def test_openapi_matches_the_url_map(offline_settings):
    from web import create_app

    app = create_app(offline_settings, configure_logs=False)
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", lambda m: "{" + _camel(m.group(1)) + "}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((method.lower(), path))
    doc = app.test_client().get("/openapi.json").get_json()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert doc["openapi"].startswith("3.")
    assert documented == routes


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)
