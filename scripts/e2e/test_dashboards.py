"""Each role's `/dashboard`, loaded in headless Chromium (Debian's package): the page loads with
no outside resource, shows live figures that change after requests, and a screenshot of each
role is saved under target/e2e-artifacts/dashboards/. Also the proxy's per-worker price and
utilisation gauges on `/metrics`."""

import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import MODEL, ROOT, http_get

ARTIFACTS = ROOT / "target" / "e2e-artifacts" / "dashboards"


def chromium() -> str:
    """The chromium binary; installed with apt-get (as scripts/lib.sh's ensure_chromium does)
    when it is not on PATH."""
    found = shutil.which("chromium")
    if not found and os.geteuid() == 0:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True)
        found = shutil.which("chromium")
    if not found:
        pytest.fail("chromium is not installed (scripts/test installs it: apt-get install chromium)")
    return found


def browse(tmp_path, url, *mode):
    profile = tmp_path / "chromium-profile"
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={profile}", "--hide-scrollbars", *mode, url]
    out = subprocess.run(args, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-2000:]
    return out.stdout.decode()


def dom(tmp_path, url) -> str:
    html = browse(tmp_path, url, "--dump-dom")
    assert "<dd id=" in html, html[:2000]
    return html


def figure(html: str, key: str) -> int:
    m = re.search(rf'<dd id="{key}">(\d+)</dd>', html)
    assert m, f"no figure {key} in the page"
    return int(m.group(1))


def screenshot(tmp_path, url, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    path.unlink(missing_ok=True)
    browse(tmp_path, url, f"--screenshot={path}", "--window-size=1280,1500")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, path
    print(f"dashboard screenshot: {path}")
    return path


def pages(net):
    return {
        "worker": f"http://127.0.0.1:{net.ports['worker_stats']}/dashboard",
        "proxy": f"http://127.0.0.1:{net.ports['proxy_stats']}/dashboard",
        "client": f"http://127.0.0.1:{net.ports['client']}/dashboard",
    }


def test_dashboards_show_live_figures_in_chromium(network, tmp_path):
    urls = pages(network)
    before = {role: dom(tmp_path, url) for role, url in urls.items()}
    for html in before.values():
        # Self-contained: nothing to fetch, nothing to run, and it reloads itself.
        assert "<script" not in html and "src=" not in html and "href=" not in html
        assert 'http-equiv="refresh"' in html
        assert "<svg" in html
    assert MODEL in before["worker"] and MODEL in before["proxy"]

    api = openai.OpenAI(base_url=network.base_url, api_key="unused", max_retries=0, timeout=30)
    for _ in range(3):
        api.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8)
    # One sampling interval, so that the charts hold a point after the requests.
    time.sleep(6)

    after = {role: dom(tmp_path, url) for role, url in urls.items()}
    for role in urls:
        served = figure(after[role], "requests-served") - figure(before[role], "requests-served")
        assert served == 3, role
    assert figure(after["worker"], "tokens-served") > figure(before["worker"], "tokens-served")
    assert figure(after["client"], "tokens") > figure(before["client"], "tokens")
    assert figure(after["client"], "spent-nanoton") > figure(before["client"], "spent-nanoton")
    assert figure(after["proxy"], "requests-charged") >= figure(before["proxy"], "requests-charged") + 3
    # The charts draw the history sampled meanwhile.
    assert "<polyline" in after["worker"] and "<polyline" in after["client"]

    for role, url in urls.items():
        screenshot(tmp_path, url, role)


def test_dashboard_keeps_the_ports_browser_guard(network):
    for url in pages(network).values():
        req = urllib.request.Request(url, headers={"Origin": "http://evil.example"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=5)
        assert e.value.code == 403, url


def test_proxy_metrics_show_price_and_utilisation_per_worker(network):
    _, text = http_get(f"http://127.0.0.1:{network.ports['proxy_stats']}/metrics")
    text = text.decode()
    worker_id = network.proxy_stats()["workers"][0]["id"]
    labels = f'{{worker="{worker_id}",model="{MODEL}"}}'
    coefficient = re.search(rf"^cocoon_proxy_worker_coefficient{re.escape(labels)} (\S+)$", text, re.M)
    utilisation = re.search(rf"^cocoon_proxy_worker_utilisation{re.escape(labels)} (\S+)$", text, re.M)
    assert coefficient and float(coefficient.group(1)) == 1000.0, text
    assert utilisation and 0.0 <= float(utilisation.group(1)) <= 1.0, text
    assert "# TYPE cocoon_proxy_worker_utilisation gauge" in text
