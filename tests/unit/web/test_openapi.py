"""Issue 17 (API) and 15: one OpenAPI 3.1 document of every route of the full app (KMC, seal, CA, TSA,
OCSP, HSM, RA, console), assembled from the packages' fragments, with examples and RFC 9457 problems;
served at /api/v1/openapi.json with an interactive reference page at /api/v1/docs (no outside code)."""
from __future__ import annotations

import re

import schemathesis

from access.auth import endpoint_roles
from racentre.openapi import openapi_document, routes


def _documented(doc) -> set[tuple[str, str]]:
    return {(op["x-endpoint"], method) for ops in doc["paths"].values() for method, op in ops.items()}


def test_every_route_is_documented(site):
    doc = openapi_document(site.app)
    served = {(endpoint, method) for _, method, endpoint in routes(site.app)}
    missing = served - _documented(doc)
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"
    assert len(served) >= 85, len(served)
    for package in ("kms.", "seal.", "ca.", "timestamp.", "hsm.", "ra.", "console.", "docs."):
        assert any(e.startswith(package) for e, _ in served), package
    # every documented path of the fragments is served by the full app (none dropped as unknown)
    whole = openapi_document()
    assert sum(len(ops) for ops in whole["paths"].values()) == sum(len(ops) for ops in doc["paths"].values())


def test_operations_carry_roles_examples_and_problems(site):
    doc = openapi_document(site.app)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            where = f"{method.upper()} {path}"
            assert op["summary"] and op["tags"], where
            roles = endpoint_roles(site.app, op["x-endpoint"])
            assert (roles is None) == (op["security"] == []), where
            if roles is not None:
                assert set(op["x-roles"]) == set(roles), where
                for code in ("401", "403"):
                    assert op["responses"][code]["content"]["application/problem+json"]["schema"] == \
                        {"$ref": "#/components/schemas/Problem"}, where
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                assert "example" in body or body["schema"].get("examples") or "$ref" in body["schema"], where
                assert "413" in op["responses"], where
            for param in op.get("parameters", ()):
                if param["in"] == "path":
                    assert "{" + param["name"] + "}" in path, where
            for name in re.findall(r"\{([a-z_]+)\}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in op.get("parameters", ())), (where, name)
    assert doc["openapi"] == "3.1.0" and "Problem" in doc["components"]["schemas"]


def test_document_loads_as_openapi_31(site):
    doc = site.client().get("/api/v1/openapi.json").get_json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [op for op in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in doc["paths"].values())
    assert all(result.ok() for result in operations), [r.err() for r in operations if not r.ok()][:3]


def test_reference_page_is_served_from_here(site):
    client = site.client()
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    scripts = re.findall(r'<script src="([^"]+)"', html) + re.findall(r'<link rel="stylesheet" href="([^"]+)"', html)
    assert scripts and all(not s.startswith(("http:", "https:", "//")) for s in scripts), scripts
    for ref in scripts:
        asset = client.get("/api/v1/" + ref)
        assert asset.status_code == 200 and len(asset.data) > 500, ref
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    js = client.get("/api/v1/docs/static/reference.js").get_data(as_text=True)
    assert 'fetch("openapi.json"' in js and "http" not in js.replace("HTTP ", "")


def test_request_examples_fit_their_schemas(site):
    """Each JSON request example (what the reference page pre-fills) is valid against its own schema."""
    import jsonschema_rs          # comes with schemathesis (setup.cfg [test])
    doc = openapi_document(site.app)
    checked = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            media = op.get("requestBody", {}).get("content", {}).get("application/json")
            if media is None or "example" not in media:
                continue
            root = {**media["schema"], "components": doc["components"]}
            errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(media["example"])]
            assert not errors, (method, path, errors)
            checked += 1
    assert checked >= 15, checked
    named = 0
    for name, schema in doc["components"]["schemas"].items():      # JSON Schema ``examples`` of a schema
        for example in schema.get("examples", ()):
            root = {**schema, "components": doc["components"]}
            errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(example)]
            assert not errors, (name, example, errors)
            named += 1
    submit = doc["components"]["schemas"]["RequestSubmit"]["examples"]
    assert {e.get("kind") for e in submit} >= {"suspend", "resume"} and all(
        e["status_reason"] for e in submit if e.get("kind") in ("suspend", "resume")), submit
    assert named >= 3, named
