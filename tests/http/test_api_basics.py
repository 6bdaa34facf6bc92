"""Health, OpenAPI, docs, auth (401/403 naming the role), problem JSON, pagination."""

from __future__ import annotations

import time

import httpx
from _api import Api

from modelcycle.store.tokens import ROLES, TokenStore

PROBLEM = "application/problem+json"


def test_health_needs_no_token_and_openapi_is_3_1(api: Api) -> None:
    with api.client(None) as c:
        assert c.get("/health").json()["status"] == "ok"
        doc = c.get("/openapi.json").json()
        assert doc["openapi"].startswith("3.1")
        assert "/api/v1/models/{name}/aliases/{alias}" in doc["paths"]
        assert "bearer" in str(doc["components"]["securitySchemes"]).lower()
        docs = c.get("/docs")
        assert docs.status_code == 200
        assert "swagger" in docs.text.lower()


def test_401_without_or_with_a_bad_or_revoked_token(api: Api) -> None:
    with api.client(None) as c:
        for headers in ({}, {"Authorization": "Bearer mc_000000000000_nope"},
                        {"Authorization": "Basic abc"}):  # fmt: skip
            r = c.get("/models", headers=headers)
            assert r.status_code == 401, r.text
            assert r.headers["content-type"] == PROBLEM
            body = r.json()
            assert body["status"] == 401
            assert body["title"]
            assert body["type"]
            assert body["detail"]
    # Revoked through the API: refused at once by this server.
    with api.client("admin") as admin:
        made = admin.post("/tokens", json={"name": "short-lived", "role": "reader"}).json()
        with api.client(token=made["token"]) as c:
            assert c.get("/models").status_code == 200
            assert admin.delete(f"/tokens/{made['token_id']}").status_code == 200
            assert c.get("/models").status_code == 401


def test_tokens_made_or_revoked_by_another_process_take_effect(api: Api) -> None:
    """The server re-reads the tokens every 2 s, off the request path: a token another process
    made just now works on its first request; one it revoked stops within a refresh."""
    with api.client("reader") as c:
        assert c.get("/models").status_code == 200  # the server holds a snapshot now
    time.sleep(2.2)  # ... and it is due, but the first request does not wait for a re-read
    other = TokenStore(api.ws.metadata, "someone-else")
    made, text = other.create("made-elsewhere", "reader")
    with api.client(token=text) as c:
        assert c.get("/models").status_code == 200
        other.revoke(made.token_id)
        time.sleep(2.2)
        statuses = []
        for _ in range(50):  # bounded: the background re-read lands within a few requests
            statuses.append(c.get("/models").status_code)
            if statuses[-1] == 401:
                break
            time.sleep(0.05)
        assert statuses[-1] == 401, statuses


def test_403_names_the_role_needed(api: Api) -> None:
    with api.client("reader") as c:
        r = c.post("/jobs/abcd/retry")
        assert r.status_code == 403
        assert "'operator'" in r.json()["detail"]
        assert r.headers["content-type"] == PROBLEM
        r = c.get("/tokens")
        assert r.status_code == 403
        assert "'admin'" in r.json()["detail"]


# Each write route, the role it needs, and a request that the route itself refuses or does
# cheaply once authorised (unknown names answer 404): the matrix checks the auth decision only.
WRITES = [
    ("PUT", "/models/nomodel/aliases/champion", {"version": 1}, "operator"),
    ("DELETE", "/models/nomodel/aliases/champion", None, "operator"),
    ("POST", "/models/nomodel/versions/1/archive", None, "operator"),
    ("POST", "/deployments", {"model": "nomodel/1", "endpoint": "e1"}, "operator"),
    ("POST", "/deployments/noendpoint/rollback", None, "operator"),
    ("POST", "/deployments/noendpoint/stop", None, "operator"),
    ("POST", "/batch-jobs", {"model": "nomodel/1", "input": "data:none@1", "output": "o"},
     "operator"),
    ("POST", "/monitoring/drift", {"model": "nomodel"}, "operator"),
    ("POST", "/jobs/abcdef/retry", None, "operator"),
    ("POST", "/jobs/abcdef/cancel", None, "operator"),
    ("POST", "/tokens", {"name": "matrix", "role": "reader"}, "admin"),
    ("DELETE", "/tokens/000000000000", None, "admin"),
]  # fmt: skip


def test_auth_matrix_each_role_on_each_write_route(api: Api) -> None:
    clients = {role: api.client(role) for role in ROLES}
    try:
        for method, path, body, needed in WRITES:
            with api.client(None) as anonymous:
                assert anonymous.request(method, path, json=body).status_code == 401, path
            for role in ROLES:
                r = clients[role].request(method, path, json=body)
                allowed = ROLES.index(role) >= ROLES.index(needed)
                if allowed:
                    assert r.status_code not in (401, 403, 500), (role, path, r.text)
                else:
                    assert r.status_code == 403, (role, path, r.text)
                    assert f"'{needed}'" in r.json()["detail"]
    finally:
        for c in clients.values():
            c.close()


def test_bad_input_is_a_4xx_problem_naming_the_field_and_the_server_stays_up(api: Api) -> None:
    with api.client("admin") as c:
        cases = [
            ("PUT", "/models/m/aliases/champion", {"version": "two"}, "body.version"),
            ("PUT", "/models/m/aliases/champion", {"version": 1, "bogus": 1}, "body.bogus"),
            ("PUT", "/models/m/aliases/champion", None, "body"),
            ("GET", "/runs?limit=0", None, "query.limit"),
            ("GET", "/runs?cursor=notacursor", None, "cursor"),
            ("GET", "/audit/events?since=yesterday", None, "since"),
            ("POST", "/tokens", {"name": "../etc/passwd", "role": "admin"}, "name"),
            ("POST", "/tokens", {"name": "ok", "role": "root"}, "role"),
            ("GET", "/models/..%2F..%2Fetc", None, None),
        ]
        for method, path, body, fld in cases:
            r = c.request(method, path, json=body)
            assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM, path
            problem = r.json()
            assert {"type", "title", "status", "detail", "problems"} <= set(problem)
            if fld is not None:
                assert fld in [p["field"] for p in problem["problems"]], (path, problem)
        r = c.post(
            "/models/m/aliases/x",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500
        assert c.get("/health").status_code == 200


def test_no_route_returns_a_secret(api: Api) -> None:
    with api.client("admin") as c:
        listed = c.get("/tokens").text
        for text in api.tokens.values():
            assert text not in listed
        assert "token_hash" not in listed
    rows = TokenStore(api.ws.metadata, "x").list()
    assert len(rows) == len(ROLES)


def test_pagination_over_1000_runs_returns_each_once(api: Api) -> None:
    ids = _make_runs(api, 1000)
    seen: list[str] = []
    with api.client("reader") as c:
        url: str | None = "/runs?limit=100"
        pages = 0
        while url is not None:
            r = c.get(url)
            assert r.status_code == 200, r.text
            page = r.json()
            seen += [run["id"] for run in page["items"]]
            url = page["next"]
            pages += 1
            if url is not None:
                assert r.headers["link"].startswith(f"<{url}>")
        assert pages == 10
    assert len(seen) == len(set(seen)) == 1000
    assert set(seen) == ids


def _make_runs(api: Api, n: int) -> set[str]:
    """``n`` runs through the run records (what the runner writes first), one write each."""
    from modelcycle.audit import utc_timestamp
    from modelcycle.entities import Run
    from modelcycle.pipelines.records import RunRecords

    records = RunRecords(api.ws.metadata, "tester")
    ids = set()
    at = utc_timestamp()
    for i in range(n):
        if i % 10:  # every tenth run shares its start time with the previous: ties page by id
            at = utc_timestamp()
        run = Run(
            id=f"run{i:05d}", pipeline="tiny", ref=None, status="running", params={"i": i},
            metrics={}, code={}, environment={}, datasets=[], models=[], started_at=at,
            created_by="tester", hostname="h", pid=None,
        )  # fmt: skip
        records.create(run)  # one write a run: left "running" (its heartbeat is fresh)
        ids.add(run.id)
    return ids


def test_every_list_route_pages(api: Api) -> None:
    with api.client("admin") as c:
        for path in ("/datasets", "/runs", "/models", "/deployments", "/monitoring/checks",
                     "/jobs", "/rules", "/audit/events", "/tokens"):  # fmt: skip
            r = c.get(path, params={"limit": 1})
            assert r.status_code == 200, (path, r.text)
            body = r.json()
            assert set(body) == {"items", "next"}, path
    with api.client("admin") as c:
        r = c.get("/tokens", params={"limit": 2})
        first = r.json()
        assert len(first["items"]) == 2
        assert first["next"]
        rest = httpx.get(first["next"], headers=c.headers).json()
        ids = [t["token_id"] for t in first["items"] + rest["items"]]
        assert len(ids) == len(set(ids)) == len(ROLES)


def test_runs_sorted_by_a_metric_page_in_order(api: Api) -> None:
    from modelcycle.audit import utc_timestamp
    from modelcycle.entities import Run
    from modelcycle.pipelines.records import RunRecords

    records = RunRecords(api.ws.metadata, "tester")
    for i in range(25):
        metrics = {"auc": (i * 7 % 25) / 25} if i % 5 else {}
        records.create(
            Run(
                id=f"m{i:03d}", pipeline="p", ref=None, status="running", params={},
                metrics=metrics, code={}, environment={}, datasets=[], models=[],
                started_at=utc_timestamp(), created_by="tester", hostname="h", pid=None,
            )
        )  # fmt: skip
    got: list[dict[str, object]] = []
    with api.client("reader") as c:
        url: str | None = "/runs?sort=-auc&limit=4"
        while url is not None:
            page = c.get(url).json()
            got += page["items"]
            url = page["next"]
        assert c.get("/runs", params={"sort": "a b"}).status_code == 422
    aucs = [r["metrics"].get("auc") for r in got]
    scored = [a for a in aucs if a is not None]
    assert len(got) == 25
    assert scored == sorted(scored, reverse=True)
    assert aucs[len(scored) :] == [None] * 5


def test_runs_compare_takes_two_to_ten_runs_as_the_cli_does(api: Api) -> None:
    ids = sorted(_make_runs(api, 11))
    with api.client("reader") as c:
        r = c.get("/runs/compare", params={"ids": ",".join(ids[:3])})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["runs"] == ids[:3]
        assert body["params"]["i"] == [0, 1, 2]
        assert set(body["holdouts"]) == set(ids[:3])
        assert body["warnings"] == []
        for wrong in (ids[:1], ids):  # one run, eleven runs
            r = c.get("/runs/compare", params={"ids": ",".join(wrong)})
            assert r.status_code == 400, r.text
            problem = r.json()
            assert problem["problems"][0]["field"] == "ids"
            assert f"got {len(wrong)}" in problem["detail"]
