"""The admin page in real headless Chromium: queue a backfill through the form with the token,
watch it reach done, promote a symbol; no page errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .support import SYMBOLS, TOKEN, Served

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def test_queue_a_backfill_from_the_page_and_watch_it_finish(
    served: Served, chromium: Browser, tmp_path: Path
) -> None:
    problems: list[str] = []
    page = chromium.new_page()
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "console",
        lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None,
    )
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.goto(served.url + "/")
    assert page.title().startswith("barlake admin")
    assert page.locator(f'#section-symbols tr[data-symbol="{SYMBOLS[0]}"]').count() == 1

    page.fill("input[name=symbols]", ",".join(SYMBOLS[:3]))
    page.fill("input[name=interval]", "1day")
    page.fill("input[name=days]", "20")
    page.click("#queue-it")  # no token yet: the page asks for it, nothing is sent
    page.wait_for_selector("#notice.error")
    assert "token" in page.inner_text("#notice")
    assert served.lake.queue.list() == []

    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    page.click("#preview")
    page.wait_for_selector("#plan:not([hidden])")
    assert "request(s)" in page.inner_text("#plan")
    page.click("#queue-it")
    page.wait_for_function("document.body.dataset.lastRequest !== undefined")
    request = page.evaluate("document.body.dataset.lastRequest")
    page.wait_for_selector(f'tr[data-request="{request}"][data-state="done"]', timeout=60_000)
    job = served.client.get(f"/backfills/{request}").json()["job_id"]
    page.wait_for_selector(f'tr[data-job="{job}"][data-status="done"]', timeout=60_000)

    promoted = SYMBOLS[3]
    page.click(f'button[data-symbol="{promoted}"][data-layer="1"]')
    page.wait_for_selector(f'button[data-symbol="{promoted}"][data-layer="0"]')
    assert f"{promoted} now at layer 1" in page.inner_text("#notice")
    assert "error" not in (page.get_attribute("#notice", "class") or "")
    page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
    assert page.evaluate("sessionStorage.getItem('lake-token')") == TOKEN
    # The page's first click without a token was refused in the page itself, not by the API.
    assert problems == []
    assert (tmp_path / "admin.png").stat().st_size > 10_000
    assert served.lake.symbol_rows([SYMBOLS[3]])[0]["layer"] == 1


def test_the_errors_section_groups_a_jobs_errors_by_symbol_and_stage(tmp_path: Path) -> None:
    import httpx

    from barlake.lake import Lake
    from barlake.providers.demo import DemoConfig, DemoProvider

    from .support import NOW, serving

    Lake.init(tmp_path / "lake", clock=lambda: NOW)
    refusing = DemoProvider(DemoConfig(unknown_symbols=("NOPE",)), clock=lambda: NOW)
    lake = Lake.open(tmp_path / "lake", clock=lambda: NOW, providers={"demo": refusing})
    lake.add_symbols([SYMBOLS[0], "NOPE"])
    lake.fill(interval=["1day", "1hour"], days=5)
    with serving(lake, workers=0) as url:
        section = httpx.get(f"{url}/admin/errors").text
        errors = httpx.get(f"{url}/jobs/{lake.jobs(1)['job_id'][0]}/errors").json()
    assert sorted(errors) == ["NOPE"]
    assert f"<tr><td>NOPE</td><td>{errors['NOPE'][0]['stage']}</td>" in section
    assert SYMBOLS[0] not in section
