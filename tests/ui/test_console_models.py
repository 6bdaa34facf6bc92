"""Sign-in, the overview, models and a version page (lineage, alias history, promotion)."""

from __future__ import annotations

import re

import httpx
from _console import Site
from playwright.sync_api import expect

from conftest import Watched


def test_pages_need_sign_in_and_sign_out_ends_the_session(web: Watched) -> None:
    page = web.goto("/models")
    expect(page).to_have_url(re.compile(r"/signin\?next=%2Fmodels$"))
    web.expected.append("status of 401")  # the refused sign-in answers 401 with the form
    page.get_by_label("API token").fill("mc_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Not signed in")
    page.get_by_label("API token").fill(web.site.tokens["reader"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(web.site.url + "/models")  # back where the reader was going
    cookie = next(c for c in page.context.cookies() if c["name"] == "mc_console")
    assert cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(web.site.url + "/signin")
    web.goto("/")
    expect(page).to_have_url(re.compile(r"/signin"))


def test_bearer_header_works_without_a_cookie(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        answer = client.get("/models", headers={"Authorization": f"Bearer {site.tokens['reader']}"})
        assert answer.status_code == 200
        assert "credit" in answer.text
        assert client.get("/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        redirected = client.get("/models")
        assert redirected.status_code == 303
        assert redirected.headers["location"].startswith("/signin")


def test_overview_shows_champion_drift_and_events(web: Watched) -> None:
    web.sign_in()
    page = web.page
    card = page.get_by_role("region", name=re.compile("credit"))
    expect(card).to_contain_text("credit/1")  # the champion
    expect(card).to_contain_text("credit (credit/1)")  # where it is deployed
    trend = card.get_by_role("img", name=re.compile(r"^accuracy of credit\/1 per hour"))
    expect(trend).to_have_attribute("aria-label", re.compile(r"measured 0\.\d+, estimated 0\.\d+"))
    expect(card.get_by_role("link", name=re.compile("accuracy .* measured"))).to_be_visible()
    # Drawn from the stored checks: the champion's check of its logged inputs.
    drifted = re.compile(r"^share of columns drifted in the last 1 check ")
    drift = card.get_by_role("img", name=drifted)
    expect(drift).to_be_visible()
    expect(card).to_contain_text(re.compile(r"[01] of 1 drifted"))
    expect(page.get_by_role("heading", name="Latest audit events")).to_be_visible()
    expect(page.locator("table").last).to_contain_text("model.promoted")
    web.shot("overview")
    page.set_viewport_size({"width": 390, "height": 844})
    expect(page.get_by_role("link", name="Models", exact=True)).to_be_visible()
    web.shot("overview-phone")


def test_models_list_and_model_versions(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/models")
    row = page.get_by_role("row", name=re.compile("credit"))
    expect(row).to_contain_text("champion → 1")
    web.shot("models")
    row.get_by_role("link", name="credit").click()
    expect(page).to_have_url(web.site.url + "/models/credit")
    expect(page.get_by_role("cell", name="2", exact=True).first).to_be_visible()
    web.wait_for_chart()  # Plotly drew
    web.shot("model")


def test_version_page_lineage_node_leads_to_the_run(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/models/credit/versions/1")
    expect(page.get_by_role("heading", level=1)).to_contain_text("credit version 1")
    history = page.locator("#alias-history")
    expect(history).to_contain_text("champion")
    expect(history).to_contain_text("promoted")
    expect(history).to_contain_text("first holder of the alias")
    graph = page.get_by_role("img", name="Lineage of credit/1:")
    expect(graph.locator('[data-kind="data set"]').first).to_contain_text("credit@1")
    web.shot("model-version")
    graph.locator('[data-kind="run"]').click()
    expect(page).to_have_url(web.site.url + f"/runs/{web.site.runs[0]}")


def test_operator_promotes_and_the_alias_moves(web: Watched) -> None:
    web.sign_in("operator")
    page = web.goto("/models/credit/versions/2")
    form = page.locator("#promote")
    form.get_by_label("Alias").fill("staging")
    form.get_by_role("button", name="Promote through the gate").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("staging")
    expect(page.locator("#alias-history")).to_contain_text("staging")
    web.goto("/models")
    expect(page.get_by_role("row", name=re.compile("credit"))).to_contain_text("staging → 2")


def test_reader_sees_no_promote_form_and_a_post_is_refused(web: Watched) -> None:
    web.sign_in("reader")
    page = web.goto("/models/credit/versions/2")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Promote"))).to_have_count(0)
    # Posting anyway, with the session cookie (and a CSRF field of its own): 403.
    answer = page.request.post(
        web.site.url + "/models/credit/versions/2/promote",
        form={"alias": "reader-try", "csrf": "x"},
    )
    assert answer.status == 403
    with httpx.Client(base_url=web.site.url) as client:
        bearer = {"Authorization": f"Bearer {web.site.tokens['reader']}"}
        refused = client.post(
            "/models/credit/versions/2/promote", data={"alias": "x"}, headers=bearer
        )
        assert refused.status_code == 403
    web.goto("/models")
    expect(page.get_by_role("row", name=re.compile("credit"))).not_to_contain_text("reader-try")


def test_a_form_without_its_csrf_token_is_refused(web: Watched) -> None:
    web.sign_in("operator")
    web.goto("/models")
    answer = web.page.request.post(
        web.site.url + "/models/credit/versions/2/promote", form={"alias": "nocsrf"}
    )
    assert answer.status == 403
    assert "CSRF" in answer.text()


def test_a_promotion_under_policy_waits_in_the_inbox_until_approved(web: Watched) -> None:
    """[promotion.production] needs one approval: the operator's promotion becomes a request
    the operator may not approve (separation of duties), a reader sees no decision forms and
    is refused, an admin approves with a comment and the alias moves."""
    web.sign_in("operator")
    page = web.goto("/models/credit/versions/2")
    form = page.locator("#promote")
    form.get_by_label("Alias").fill("production")
    form.get_by_role("button", name="Promote through the gate").click()
    expect(page).to_have_url(re.compile(r"/approvals/[0-9a-f]+$"))
    request_url = page.url
    expect(page.get_by_role("heading", level=1)).to_contain_text("pending")
    expect(page.get_by_role("note")).to_contain_text("operator-person requested this promotion")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    web.shot("approval-requested")
    with httpx.Client(base_url=web.site.url) as client:
        bearer = {"Authorization": f"Bearer {web.site.tokens['reader']}"}
        refused = client.post(request_url.removeprefix(web.site.url) + "/approve", headers=bearer)
        assert refused.status_code == 403
    page.context.clear_cookies()
    web.sign_in("admin")
    pending = page.locator("#pending")
    expect(pending).to_contain_text("credit@production → 2")
    pending.get_by_role("link").first.click()
    expect(page).to_have_url(request_url)
    page.get_by_label("Comment (optional)").fill("holdout figures look right")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("approved")
    expect(page.locator("#approvals-given")).to_contain_text("admin-person")
    expect(page.locator("#approvals-given")).to_contain_text("holdout figures look right")
    web.shot("approval-approved")
    web.goto("/models")
    expect(page.get_by_role("row", name=re.compile("credit"))).to_contain_text("production → 2")
    web.goto("/approvals")
    expect(page.locator("#approvals")).to_contain_text("No promotion is waiting")


def test_why_is_this_in_production_is_a_graph_of_links_by_keyboard_and_on_a_phone(
    web: Watched,
) -> None:
    """deployment:credit, top to bottom: data sets, run, version, promotion, bundle,
    deployment; Tab reaches every box, Enter follows one; a 390 px phone needs no sideways
    scrolling."""
    web.sign_in()
    page = web.page
    page.set_viewport_size({"width": 390, "height": 844})
    web.goto("/audit/why?subject=deployment:credit")
    graph = page.locator("#why-graph")
    kinds = graph.locator("a[data-kind]")
    expect(kinds.first).to_have_attribute("data-kind", "data set")
    found = [kinds.nth(i).get_attribute("data-kind") for i in range(kinds.count())]
    # The run, version and bundle before the deployment, in that order, top to bottom.
    order = [k for k in found if k in ("run", "model version", "bundle", "deployment")]
    assert order == ["run", "model version", "bundle", "deployment"], found
    tops = [kinds.nth(i).bounding_box()["y"] for i in range(kinds.count())]  # type: ignore[index]
    assert tops == sorted(tops)  # vertical
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = graph.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 390
    web.shot("why-graph-phone")
    page.get_by_label("Subject").focus()
    focused: list[str | None] = []
    for _ in range(len(found) + 1):  # past the Show button, then every box in turn
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.getAttribute('data-kind')"))
    assert focused[1:] == found
    while page.evaluate("document.activeElement.getAttribute('data-kind')") != "run":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]+$"))
