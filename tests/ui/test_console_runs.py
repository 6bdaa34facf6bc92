"""The runs table (sort, filter), a run's page, and comparing two runs."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from conftest import Watched


def _run_ids(web: Watched) -> list[str]:
    return web.page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")


def test_runs_table_sorts_and_filters(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/runs")
    first, second = web.site.runs
    assert _run_ids(web) == [second, first]  # newest first
    web.shot("runs")
    page.get_by_role("link", name=re.compile("^Started")).click()  # toggles to oldest first
    expect(page).to_have_url(re.compile(r"sort=started&order=asc"))
    assert _run_ids(web) == [first, second]
    header = page.get_by_role("columnheader", name=re.compile("^Started"))
    expect(header).to_have_attribute("aria-sort", "ascending")
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page.locator("#runs tbody")).to_contain_text("No run matches.")
    page.go_back()  # the back button returns to the unfiltered table
    expect(page.locator("#runs tbody tr")).to_have_count(2)
    page.get_by_label("Data set").fill("credit@1")
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#runs tbody tr")).to_have_count(2)


def test_run_page_shows_params_steps_and_links(web: Watched) -> None:
    web.sign_in()
    run = web.site.runs[1]
    page = web.goto(f"/runs/{run}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(run)
    expect(page.locator("#steps tbody tr").first).to_be_visible()
    expect(page.get_by_role("link", name="credit/2")).to_be_visible()
    expect(page.get_by_role("link", name="credit@1").first).to_be_visible()
    web.shot("run")


def test_compare_highlights_a_differing_param(web: Watched) -> None:
    web.sign_in()
    page = web.goto("/runs")
    for run in web.site.runs:
        page.get_by_label(f"Compare run {run}").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page).to_have_url(re.compile(r"/runs/compare\?ids=[0-9a-f]+%2C[0-9a-f]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Compare 2 runs")
    seed = page.locator('#compare-params tr[data-param="seed"]')
    expect(seed).to_have_class("differs")
    expect(seed).to_contain_text("differs")  # said in words, not only by colour
    expect(page.locator("#compare-metrics")).to_contain_text("roc_auc")
    web.wait_for_chart()
    web.shot("compare")
    page.get_by_role("link", name="Only differences").click()
    expect(page.locator("#compare-params tbody tr:not(.differs)")).to_have_count(0)
