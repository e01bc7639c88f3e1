"""The report as a reader gets it: the tiny run's results/report.html opened in headless
Chromium (tests/report_check.js, injected into a copy of the page, measures it after it
loads): every image decoded, no script error, nothing wider than a 1280 px window outside a
scroll box, the verdict before the first table, every entry of the table of contents
present. A screenshot at 1400 px is kept in the test's temp folder for a person to look at.
The check itself is shown to catch each fault on a page made to have them."""

import html
import json
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow

CHECK = (Path(__file__).parent / "report_check.js").read_text()
PARTS = ["verdict", "what-was-run", "scores-and-curves", "along-training-size-and-sweeps",
         "along-depth", "one-model-test-sslmem-and-unitmem", "rcdm-reconstructions",
         "examples", "full-tables"]  # the tiny run's (no VLM), in reading order


def browse(chromium: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(chromium), "--headless", "--no-sandbox", "--disable-gpu",
                           "--hide-scrollbars", *args], capture_output=True, text=True,
                          timeout=120)


def measured(chromium: Path, page: str, folder: Path, width: int = 1280) -> dict:
    """What report_check.js finds on `page` (HTML) rendered `width` px wide."""
    checked = folder / "checked.html"
    checked.write_text(page.replace("<head>", f"<head><script>{CHECK}</script>", 1))
    done = browse(chromium, f"--window-size={width},900", "--virtual-time-budget=10000",
                  "--dump-dom", checked.as_uri())
    found = re.search(r'<pre id="dejavu-check">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the check did not run: {done.stderr[-2000:]}"
    return json.loads(html.unescape(found.group(1)))


def test_the_report_reads_in_a_real_browser(tiny_run, chromium, tmp_path):
    work, _ = tiny_run
    report = work / "results" / "report.html"
    page = report.read_text()
    assert "http://" not in page and "https://" not in page  # opens without a network
    seen = measured(chromium, page, tmp_path)
    assert seen["images"] >= 10 and seen["undecoded"] == 0, seen
    assert seen["errors"] == [], seen["errors"]
    assert seen["wide"] == [] and seen["page_width"] <= seen["viewport"], seen
    assert seen["verdict_first"], "the verdict comes after a table"
    assert seen["missing"] == [] and [p for p in seen["toc"] if p in PARTS] == PARTS
    shot = tmp_path / "report.png"
    browse(chromium, "--window-size=1400,2400", f"--screenshot={shot}", report.as_uri())
    assert shot.stat().st_size > 10_000  # for a person to look at


def test_the_browser_check_finds_each_fault(chromium, tmp_path):
    """A page with a wide table outside any scroll box, an image that does not decode, a
    script error, a table before the verdict and a contents entry without its section."""
    faulty = ("<!doctype html><html><head><meta charset='utf-8'></head><body>"
              "<nav class='toc'><a href='#verdict'>v</a><a href='#gone'>g</a></nav>"
              "<table><tr>" + "<td>wide&nbsp;cell&nbsp;of&nbsp;numbers</td>" * 80
              + "</tr></table><h2 id='verdict'>Verdict</h2>"
              "<img src='data:image/png;base64,bm90IGEgcG5n'>"
              "<script>undefinedFunction()</script></body></html>")
    seen = measured(chromium, faulty, tmp_path)
    assert seen["undecoded"] == 1 and seen["images"] == 1
    assert any("undefinedFunction" in e for e in seen["errors"])
    assert any(w.startswith("TABLE") for w in seen["wide"]) and \
        seen["page_width"] > seen["viewport"]
    assert not seen["verdict_first"] and seen["missing"] == ["gone"]
