"""The web UI serves the server's Prometheus metrics at /metrics, behind its password."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from tests.web.conftest import WebUI

import werk


def test_metrics_page_is_behind_the_password_and_counts_the_jobs(web_ui_password: WebUI) -> None:
    assert web_ui_password.request("/metrics", password=None).status == 401
    with web_ui_password.client() as client:
        client.push(werk.Job("A", [], queue="mail"))
    page = web_ui_password.request("/metrics")
    assert page.status == 200, page.text
    assert page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(page.text)}
    queued = {tuple(s.labels.items()): s.value for s in families["werk_server_queue_jobs"].samples}
    assert queued == {(("queue", "mail"),): 1}
    assert page.text.startswith("# HELP ")  # the exposition alone, no page around it


def test_metrics_is_not_a_page_of_the_navigation(web_ui: WebUI) -> None:
    home = web_ui.request("/")
    assert home.status == 200
    assert 'href="/metrics"' not in home.text
