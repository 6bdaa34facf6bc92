"""Data sets, deployments, approvals, monitoring, automations and the audit pages."""

from __future__ import annotations

import json
import re

import httpx
from playwright.sync_api import expect

from conftest import Watched


def test_datasets_versions_profile_and_diff(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/datasets")
    expect(page.get_by_role("row", name=re.compile(r"^credit 2"))).to_contain_text("1,500")
    web.shot("datasets")
    page.get_by_role("link", name="credit", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("credit")
    web.shot("dataset")
    page.get_by_role("link", name="Compare the two latest versions").click()
    expect(page).to_have_url(web.site.url + "/datasets/credit/diff")
    expect(page.get_by_role("heading", level=1)).to_have_text("credit@1 → credit@2")
    changed = page.locator("#diff tr.differs")
    expect(changed.first).to_contain_text("changed")  # the drifted columns, in words too
    web.shot("dataset-diff")
    web.goto("/datasets/credit/versions/1")
    profile = page.locator("#profile")
    expect(profile.get_by_role("img", name=re.compile("Histogram of age"))).to_be_visible()
    expect(profile.get_by_role("row", name=re.compile("^income"))).to_contain_text("%")
    web.shot("dataset-version")


def test_reader_sees_no_deployment_actions(web: Watched) -> None:
    web.sign_in("reader")
    page = web.goto("/deployments/credit", wait_until="commit")
    expect(page.get_by_role("heading", level=1)).to_have_text("Endpoint credit")
    expect(page.get_by_role("link", name=re.compile("Roll back|Stop"))).to_have_count(0)
    with httpx.Client(base_url=web.site.url) as client:
        bearer = {"Authorization": f"Bearer {web.site.tokens['reader']}"}
        refused = client.post(
            "/deployments/credit/stop", data={"confirm": "credit"}, headers=bearer
        )
        assert refused.status_code == 403


def test_operator_deploys_rolls_back_and_stops_with_confirmation(web: Watched) -> None:
    """The one real deployment of the console tests: credit/2 goes to the endpoint that serves
    credit/1 (blue/green, through the deploy form), the router counts a request, then a roll
    back returns the endpoint to credit/1, then a stop."""
    web.sign_in("operator")
    page = web.goto("/models/credit/versions/2")
    page.get_by_role("link", name="Deploy this version…").click()
    form = page.locator("#deploy")
    expect(form.get_by_label(re.compile("^Model version"))).to_have_value("credit/2")
    form.get_by_label("Endpoint", exact=True).fill("credit")
    web.shot("deploy-form")
    form.get_by_role(
        "button", name="Deploy", exact=True
    ).click()  # the browser asks for the box first
    expect(page).to_have_url(re.compile(r"/deployments\?model="))
    form.get_by_label(re.compile("^Deploy now")).check()
    # Deploying takes seconds: the click waits for the answer (the new page) that long.
    form.get_by_role("button", name="Deploy", exact=True).click(timeout=120_000)
    expect(page).to_have_url(web.site.url + "/deployments/credit")
    expect(page.get_by_text("Serving credit/2")).to_contain_text("running")
    url = web.site.ws.deploy.active("credit").url
    assert httpx.get(url + "/v2/health/ready", timeout=10).status_code == 200
    # Not until "load": the page now carries Plotly (4.6 MB), slow to parse on a busy machine;
    # the checks below wait for what they look at.
    page.reload(wait_until="commit")
    live = page.locator("#router tbody tr").first
    expect(live).to_contain_text("live")
    expect(live.locator("td").nth(1)).to_have_text(re.compile(r"^[1-9]"))  # requests counted
    # The same requests per minute: the newest row is the live backend's, with its p99.
    minute = page.locator("#traffic tbody tr").first
    expect(minute).to_contain_text("live")
    expect(minute.locator("td").nth(2)).to_have_text(re.compile(r"^[1-9]"))
    expect(minute.locator("td").nth(6)).to_have_text(re.compile(r"^\d+\.\d$"))
    web.wait_for_chart()
    web.shot("deployment-live")
    page.set_viewport_size({"width": 390, "height": 844})
    # Plotly redraws the chart to the new width on its resize handler: until then it is wide.
    page.wait_for_function("document.documentElement.scrollWidth <= 390")
    web.shot("deployment-live-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.get_by_role("link", name="Roll back…").click()
    expect(page.get_by_role("alert")).to_contain_text("Roll back credit?")
    web.shot("deployment-confirm")
    page.get_by_label("to confirm").fill("credi")  # a typo: refused, nothing changes
    web.expected.append("status of 400")
    page.get_by_role("button", name="Roll back credit").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("400")
    web.goto("/deployments/credit?confirm=rollback", wait_until="commit")
    page.get_by_label("to confirm").fill("credit")
    page.get_by_role("button", name="Roll back credit").click(timeout=120_000)
    expect(page).to_have_url(web.site.url + "/deployments/credit")
    expect(page.get_by_text("Serving credit/1")).to_contain_text("running")
    assert web.site.ws.deploy.active("credit").model == "credit/1"
    page.get_by_role("link", name="Stop…").click()
    page.get_by_label("to confirm").fill("credit")
    page.get_by_role("button", name="Stop credit").click()
    expect(page.get_by_text("Nothing serves this endpoint now.")).to_be_visible()
    expect(page.locator("table").last).to_contain_text("stopped")
    web.shot("deployment")


def test_approvals_inbox_lists_requests(web: Watched) -> None:
    web.sign_in("operator")
    page = web.goto("/approvals")
    expect(page.get_by_role("heading", level=1)).to_have_text("Approvals")
    expect(page.get_by_role("note")).to_have_count(0)  # a policy is configured: no notice
    expect(page.locator("#approvals thead")).to_contain_text("Requested by")
    page.get_by_role("link", name=re.compile("^Include decided")).click()
    expect(page).to_have_url(re.compile(r"/approvals\?all=1$"))
    web.shot("approvals")


def test_monitoring_heatmap_and_check_with_its_sandboxed_report(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/monitoring")
    expect(
        page.get_by_role("heading", name=re.compile(r"^Performance of credit\/1"))
    ).to_be_visible()
    window = page.locator("#performance-table tbody tr").first
    expect(window).to_contain_text("200")  # the predictions the rig scored, all labelled
    expect(window.locator("td").nth(3)).to_have_text(re.compile(r"^0\.\d+"))  # measured
    expect(window.locator("td").nth(4)).to_have_text(re.compile(r"^0\.\d+"))  # estimated
    web.wait_for_chart()
    heatmap = page.locator("#heatmap")
    drifted = heatmap.locator("td.cell-drift").first
    expect(drifted).to_contain_text("⚠ drifted")
    expect(drifted).to_contain_text(re.compile(r"[0-9.e-]+ / 0\.\d+$"))  # figure / threshold
    # Hover: the test and its figure against the threshold (a distance here: wasserstein).
    expect(drifted).to_have_attribute("title", re.compile(r"^age: \w+: .+ (<|≥) 0\.\d+$"))
    # A check with too few rows for a column shows "ok no data" there (the rig's one-column
    # check of credit/1's logged inputs has such cells): take a tested one.
    ok = heatmap.locator("td.cell-ok:not([title*='not enough data'])").first
    expect(ok).to_contain_text(re.compile(r"^ok [0-9.e-]+ / 0\.\d+$"))
    web.shot("monitoring")
    heatmap.get_by_role("link", name=f"#{web.site.check}").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Drift check #{web.site.check}")
    first = page.locator("#check-columns tbody tr").first
    expect(first).to_contain_text("⚠ drifted")
    expect(first).to_contain_text(re.compile(r"(≥|<) 0\.\d+"))
    frame_el = page.locator("iframe#report")
    expect(frame_el).to_have_attribute("sandbox", "allow-scripts")
    report = page.frame_locator("iframe#report")
    # The report carries Plotly inline (megabytes) and redraws its charts: give it time.
    expect(report.get_by_role("heading", level=1)).to_contain_text("rift", timeout=30_000)
    frame = next(f for f in page.frames if f.url.endswith(f"/checks/{web.site.check}/report"))
    # The report runs in an opaque origin: no access to the console's cookie or pages.
    assert frame.evaluate("() => window.origin") == "null"
    cookie = frame.evaluate("() => { try { return document.cookie } catch (e) { return e.name } }")
    assert cookie == "SecurityError"
    web.shot("check")


def test_jobs_cancel_then_retry_as_operator(web: Watched) -> None:
    web.sign_in("operator")
    page = web.goto("/jobs")
    expect(page.locator("#jobs")).to_contain_text(web.site.job)
    nightly = page.locator("#schedules").get_by_role("row", name=re.compile("^nightly-note"))
    expect(nightly).to_contain_text("1d")
    expect(nightly).to_contain_text("note")
    expect(page.locator("#schedules")).to_contain_text("monitor credit@champion")
    expect(page.locator("#sources")).to_contain_text("incoming/credit-*.parquet")
    web.shot("jobs")
    page.get_by_role("link", name=web.site.job).click()
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("cancelled")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("queued")
    expect(page.locator("#chain")).to_contain_text("job.")
    web.shot("job")


def test_reader_cannot_cancel_a_job(web: Watched) -> None:
    web.sign_in("reader")
    page = web.goto(f"/jobs/{web.site.job}")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Cancel|Retry"))).to_have_count(0)
    with httpx.Client(base_url=web.site.url) as client:
        bearer = {"Authorization": f"Bearer {web.site.tokens['reader']}"}
        assert client.post(f"/jobs/{web.site.job}/cancel", headers=bearer).status_code == 403


def test_audit_timeline_filter_verify_export_and_why(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/audit")
    expect(page.locator("table")).to_contain_text("model.promoted")
    web.shot("audit")
    page.get_by_label("Action").fill("model.promoted")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"action=model.promoted"))
    rows = page.locator("table tbody tr")
    expect(rows.first).to_contain_text("model.promoted")
    expect(rows.filter(has_not_text="model.promoted")).to_have_count(0)
    page.get_by_role("button", name="Verify the chain").click()
    expect(page.locator("#verify-out #verify-result")).to_contain_text("Intact")  # htmx, in place
    assert "/audit/verify" not in page.url
    expect(page.locator("#verify-result code")).to_have_text(re.compile("^[0-9a-f]{64}$"))
    web.shot("verify")
    web.goto("/audit")
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download every event")).click()
    lines = download.value.path().read_text(encoding="utf-8").splitlines()
    actions = [json.loads(line).get("event", {}).get("action") for line in lines]
    assert "model.promoted" in actions
    web.goto("/audit/why?subject=model:credit/1")
    expect(page.locator("#chain li").first).to_contain_text("model.alias_moved on model:credit/1")
    web.shot("why")
