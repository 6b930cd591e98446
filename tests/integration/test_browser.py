"""What a user sees in a browser, through headless Chromium: the run report that `edgelearn report`
writes, and the MLflow UI on the run's store (the runs table, not MLflow's GenAI view).

Chromium is driven over the DevTools protocol (a websocket on 127.0.0.1): the checks read the page
as rendered, after its scripts ran (image sizes, the text of the MLflow runs table)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
import yaml
from websockets.sync.client import connect

from components.report import CURVES
from tests.conftest import QUIET_ENV
from tests.helpers import BIN

# chromium first: a machine without it fails at once, not after the smoke pipeline ran
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("chromium")]


class Page:
    """One Chromium tab over the DevTools protocol: navigate, evaluate JavaScript."""

    def __init__(self, ws_url: str) -> None:
        self.conn = connect(ws_url, max_size=None, open_timeout=30)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.conn.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:  # events arrive in between; the answer carries our id
            reply = json.loads(self.conn.recv(timeout=60))
            if reply.get("id") == msg_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)  # fmt: skip
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 90) -> Any:
        """Poll ``expression`` until it is truthy (the page rendered what it checks for)."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.5)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("chromium is missing: the browser tests open the run report and the MLflow UI "
                    "in it (`make test` installs it: scripts/install-test-deps.sh)")  # fmt: skip
    return path


@pytest.fixture(scope="module")
def page(chromium, tmp_path_factory) -> Iterator[Page]:
    """A headless Chromium with its DevTools endpoint on 127.0.0.1 and a fresh profile (as a
    first visit: no saved UI state), and its one tab."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = open(profile.parent / "chromium.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--window-size=1600,1000", "about:blank"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"chromium did not start: {(profile.parent / 'chromium.log').read_text()[-3000:]}"
            )
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            tabs = [t for t in json.load(r) if t["type"] == "page"]
        page = Page(tabs[0]["webSocketDebuggerUrl"])
        page.call("Page.enable")
        yield page
        page.conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# ----------------------------------------------------------------------------- the run report

# Every <img>: loaded, decoded to a non-empty picture, shown; and whatever the page loads at all.
PAGE_FACTS = """(() => {
  const imgs = [...document.images].map(i => ({alt: i.alt, complete: i.complete,
    natural: [i.naturalWidth, i.naturalHeight], shown: i.getBoundingClientRect().width,
    src: i.getAttribute('src').slice(0, 40)}));
  const loads = [...document.querySelectorAll('[src], link[href], script')]
    .map(e => e.getAttribute('src') || e.getAttribute('href') || 'inline script');
  const tables = [...document.querySelectorAll('table')].map(t => ({
    before: (() => { let e = t.previousElementSibling;
                     while (e && !/^H[23]$/.test(e.tagName)) e = e.previousElementSibling;
                     return e ? e.textContent : ''; })(),
    head: [...t.querySelectorAll('th')].map(th => th.textContent),
    rows: [...t.querySelectorAll('tbody tr')].map(tr => [...tr.cells].map(c => c.textContent)),
    shown: t.getBoundingClientRect().height > 0}));
  const links = [...document.links].map(a => [a.textContent, a.getAttribute('href')]);
  return {ready: document.readyState, imgs, loads, tables, links,
          svgs: [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width),
          headings: [...document.querySelectorAll('h2')].map(h => h.textContent)};
})()"""


@pytest.fixture(scope="module")
def report(smoke, stage_env, tmp_path_factory) -> tuple[Path, Path]:
    """`edgelearn report` in the smoke workspace, written outside it (its params with another
    ``paths.report``), so no other test's files change. Returns (workspace, report)."""
    ws = smoke[0]
    tmp = tmp_path_factory.mktemp("report")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["paths"]["report"] = str(tmp / "report.html")
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = subprocess.run([str(BIN / "edgelearn"), "report", "--params", str(tmp / "params.yaml")],
                          cwd=ws, env=stage_env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp / "report.html").is_file(), proc.stdout
    return ws, tmp / "report.html"


def test_report_renders_every_figure_and_the_headline_tables(report, page):
    ws, path = report
    page.goto(path.as_uri())
    facts = page.wait_for(f"document.readyState === 'complete' && {PAGE_FACTS}", timeout=60)
    assert facts, "the report did not finish loading"
    # every figure: an embedded PNG that decoded to a real picture and takes room on the page
    curves = {title for name, *_, title in CURVES if (ws / f"metrics/plots/{name}.json").is_file()}
    expected = {"pipeline", "search: every evaluated candidate and the winners", *curves}
    assert {i["alt"] for i in facts["imgs"]} == expected and len(facts["imgs"]) == len(expected)
    for img in facts["imgs"]:
        assert img["src"].startswith("data:image/png;base64,"), img
        assert img["complete"] and min(img["natural"]) > 0 and img["shown"] > 0, img
    assert all(width > 0 for width in facts["svgs"])  # none today; any added must render
    # self-contained: nothing is fetched (figures are data: URIs, no scripts or stylesheets)
    assert all(src.startswith("data:") for src in facts["loads"]), facts["loads"]
    assert {"Pipeline", "Figures", "Headline figures", "Latency table"} <= set(facts["headings"])
    stages = next(t for t in facts["tables"] if t["head"] == ["stage", "status", "time"])
    assert [row[:2] for row in stages["rows"]] == [
        [s, "ran"] for s in ("corpus", "prepare", "supernet", "search", "finetune", "export")
    ]
    headline = {t["before"]: dict(t["rows"]) for t in facts["tables"]
                if t["head"] == ["figure", "value"] and t["shown"]}  # fmt: skip
    prepare = json.loads((ws / "metrics/prepare.json").read_text())
    assert headline["prepare"]["num_clients"] == str(prepare["num_clients"])
    search = json.loads((ws / "metrics/search.json").read_text())
    assert set(headline["search"]) == set(search)
    assert {"supernet", "finetune", "export"} <= set(headline)
    # the MLflow links open the model-training views (MLflow 3.17 shows GenAI ones otherwise)
    mlflow_links = [href for text, href in facts["links"] if "/#/experiments/" in href]
    assert len(mlflow_links) == 2 + 6  # the experiment, the pipeline run, each stage's run
    assert all("workflowType=machine_learning" in href for href in mlflow_links), mlflow_links


# ----------------------------------------------------------------------------- the MLflow UI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(smoke, tmp_path_factory) -> Iterator[str]:
    """`mlflow server` on the smoke run's store, on 127.0.0.1; stopped after the module."""
    _, uri, _ = smoke
    home = tmp_path_factory.mktemp("mlflow-ui")
    port = _free_port()
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", uri, "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        cwd=home, env={**os.environ, **QUIET_ENV}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"mlflow server did not start: {(home / 'server.log').read_text()[-3000:]}"
            )
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# The runs table as rendered: AG Grid draws only the columns in view, so the grid is scrolled
# across and every header and cell seen on the way is kept (by column id; rows by row index).
RUNS_TABLE = """(async () => {
  const scroller = document.querySelector('.ag-body-horizontal-scroll-viewport');
  if (!scroller || !document.querySelector('.ag-row')
      || !document.querySelector('.ag-header-cell[col-id^="metrics."]')) return null;
  const headers = {}, rows = {};
  const grab = () => {
    document.querySelectorAll('.ag-header-cell[col-id]').forEach(
      h => { headers[h.getAttribute('col-id')] = h.innerText.trim(); });
    document.querySelectorAll('.ag-row[row-index]').forEach(r => {
      const row = rows[r.getAttribute('row-index')] ??= {};
      r.querySelectorAll('.ag-cell[col-id]').forEach(
        c => { row[c.getAttribute('col-id')] = c.innerText.trim(); });
    });
  };
  const step = Math.max(scroller.clientWidth / 2, 100);
  for (let x = 0; ; x += step) {
    scroller.scrollLeft = x;
    await new Promise(done => setTimeout(done, 250));
    grab();
    if (x >= scroller.scrollWidth) break;
  }
  return {headers, rows: Object.values(rows)};
})()"""


def _run_name(row: dict[str, str]) -> str:
    """The name in a run name cell (its text is the colour chip's label, then the name)."""
    lines = row.get("attributes.`Run Name`", "").splitlines()
    return lines[-1] if lines else ""


def test_mlflow_ui_opens_the_runs_table_with_the_headline_figures(report, smoke, mlflow_ui, page):
    """The report's "MLflow experiment" link, on a first visit: the model-training runs table
    (not MLflow's GenAI view, where a fresh browser lands otherwise), a row per pipeline run, and
    the pipeline runs' headline figures as columns."""
    _, uri, _ = smoke
    _, path = report
    page.goto(path.as_uri())
    link = page.wait_for("[...document.links].find(a => a.textContent === 'MLflow experiment')"
                         "?.getAttribute('href')", timeout=30)  # fmt: skip
    default_ui = "http://127.0.0.1:5000"  # where `mlflow ui` listens; the report assumes it
    assert link and link.startswith(f"{default_ui}/#/experiments/"), link
    page.goto(mlflow_ui + link.removeprefix(default_ui))
    table = page.wait_for(RUNS_TABLE, timeout=120)
    where = page.evaluate("location.hash")
    assert table, (f"no runs table with metric columns at {where}: "
                   f"{page.evaluate('document.body.innerText')[:1500]}")  # fmt: skip
    route = where.removeprefix("#").split("?")[0]
    assert route.endswith("/runs") and "workflowType=machine_learning" in where, where

    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("edgelearn")
    assert route == f"/experiments/{experiment.experiment_id}/runs"
    parents = client.search_runs([experiment.experiment_id], "tags.`edgelearn.kind` = 'pipeline'")
    names = [_run_name(row) for row in table["rows"]]
    assert names.count("pipeline") == len(parents) >= 1, names
    # every headline figure the pipeline runs carry is a column, named by its key
    metric_columns = {key.removeprefix("metrics.").strip("`"): text
                      for key, text in table["headers"].items()
                      if key.startswith("metrics.")}  # fmt: skip
    latest = max(parents, key=lambda r: r.info.start_time)
    headline = set(latest.data.metrics)
    assert {"prepare.num_clients", "supernet.val_acc_full", "export.fp32_test_acc"} <= headline
    assert set(metric_columns) == headline
    assert all(metric_columns[k] == k for k in headline)
    # ... with the latest run's figures in its row (the newest run is the first row)
    row = next(row for row in table["rows"] if _run_name(row) == "pipeline")
    for key in ("prepare.num_clients", "supernet.val_acc_full", "search.val_acc"):  # 3 decimals
        assert float(row[f"metrics.`{key}`"]) == pytest.approx(latest.data.metrics[key], abs=1e-3)
