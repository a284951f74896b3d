"""The web app end to end in a real headless Chromium (Playwright, the system's Chromium), on SQLite and PostgreSQL.

One server per backend for the whole module (uvicorn in a thread), over a database holding real describe()
results of the tiny synthetic model (described once, stored in each backend as batch stores them). Screenshots of the main pages go to runs/web-screenshots/ (not committed).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.db_helpers import db_url
from tests.web_helpers import SCREENSHOTS, chromium_path, serving, test_manifest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def describe_pipeline(describe_model_dir, synthetic_species_dir, one_torch_thread):
    """The tiny model's describe pipeline with the synthetic expert list (loaded once for the module)."""
    from pipeline.describe import Pipeline

    return Pipeline.load(describe_model_dir, expert=str(synthetic_species_dir / "traits.csv"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def described(describe_pipeline, describe_model_dir, synthetic_species_dir, tmp_path_factory):
    """One test photo of each synthetic species described against its sibling (once for both backends)."""
    from pipeline.batch import classifier_fingerprint, read_manifest, read_pairs
    from pipeline.species import SpeciesIndex
    from traits.db import ImageRecord, file_sha256

    card, fingerprint = classifier_fingerprint(describe_model_dir)
    pairs = read_pairs(synthetic_species_dir / "pairs.csv", SpeciesIndex(card["class_names"]))
    manifest = test_manifest(synthetic_species_dir, tmp_path_factory.mktemp("web") / "manifest.csv", per_species=1)
    out = []
    for row in read_manifest(manifest):
        results = [describe_pipeline.describe(row.path, c, target_species=row.species) for c in pairs[row.species]]
        out.append((ImageRecord(file_sha256(row.path), str(row.path), row.species, width=96, height=96), results))
    return manifest, fingerprint, out


@pytest.fixture(scope="module")
def site(backend, described, describe_pipeline, describe_model_dir, synthetic_species_dir, tmp_path_factory):
    """(base URL, WebState) of a running app over a database holding one run of 6 described photos, stored as
    `batch` stores them (same run configuration fields, one transaction per photo)."""
    from pipeline.web import WebConfig, create_app
    from pipeline.web.security import UploadLimits
    from traits.db import TraitDB

    tmp = tmp_path_factory.mktemp(f"web-{backend}")
    urls = db_url(backend, tmp)
    url = next(urls)
    manifest, fingerprint, photos = described
    expert = str(synthetic_species_dir / "traits.csv")
    with TraitDB(url) as db:
        run = db.start_run({"classifier_sha256": fingerprint, "expert": expert, "test": "web"}, classifier=str(describe_model_dir),
                           classifier_sha256=fingerprint, scorer="color", expert_source=expert)
        for image, results in photos:
            db.write_image_results(run.id, image, results, expert_source=expert)
        db.fill_run_provenance(run.id, photos[0][1][0].provenance)
        db.finish_run(run.id)
    config = WebConfig(db=url, models=[describe_model_dir], uploads=tmp / "uploads", manifest=manifest,
                       expert=expert, page_size=10, curator="Test Curator",
                       limits=UploadLimits(max_bytes=200_000, max_pixels=1_000_000))
    app = create_app(config)
    app.state.web.models.entries[0].pipeline = describe_pipeline  # already loaded: spare the module a second load
    with serving(app) as base:
        yield base, app.state.web
    app.state.web.db.close()
    try:
        next(urls)
    except StopIteration:
        pass


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, site):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    context.close()


def shot(pg, backend: str, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SCREENSHOTS / f"{backend}-{name}.png"), full_page=True)


def wait_js(pg, expression: str, timeout: float = 30.0) -> None:
    """Wait until a JavaScript expression is true (polled from outside: the app's CSP forbids in-page eval)."""
    import time

    deadline = time.monotonic() + timeout
    while not pg.evaluate(f"() => Boolean({expression})"):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


def curations(web, assertion_id: int) -> list[dict]:
    from traits.review import history

    return history(web.db, assertion_id)


def first_result_id(web) -> int:
    rows, _ = web.db.results_page(limit=1)
    return rows[-1]["id"]


def test_browse_filter_and_paginate(page, site, backend) -> None:
    base, web = site
    page.goto(base + "/")
    assert page.locator("#pairs tr").count() == 7  # header + 6 ordered pairs (each pair used both ways)
    shot(page, backend, "home")
    page.goto(base + "/traits")
    total = web.db.counts()["trait_assertions"]
    assert total > 10
    assert page.locator("#queue tr[data-id]").count() == 10
    assert f"({total} in all)" in page.locator(".pager").inner_text()
    first_ids = page.locator("#queue tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    page.click("#next-page")
    page.wait_for_url("**page=2")
    second_ids = page.locator("#queue tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")
    assert second_ids and not set(first_ids) & set(second_ids)
    page.goto(base + "/traits")
    page.fill("input[name=species]", "Synthia rubra")
    page.select_option("select[name=status]", "pending")
    page.click("#apply")
    page.wait_for_url("**species=Synthia+rubra**")
    cells = page.locator("#queue tr[data-id] td:nth-child(2)").all_inner_texts()
    assert cells and all(c.startswith("Synthia rubra vs") for c in cells)
    shot(page, backend, "traits-filtered")
    page.goto(base + "/traits?expert=confirmed")
    experts = page.locator("#queue tr[data-id] td:nth-child(8)").all_inner_texts()
    assert all(e == "confirmed" for e in experts)
    page.goto(base + "/photos")
    assert page.locator("#photos img.thumb").count() == 6


def test_photo_page_switches_overlays(page, site, backend) -> None:
    base, web = site
    rid = first_result_id(web)
    page.goto(f"{base}/result/{rid}")
    overlay = page.locator("#overlay")
    wait_js(page, "document.getElementById('overlay').complete && "
                           "document.getElementById('overlay').naturalWidth > 0")
    assert overlay.get_attribute("src").endswith("/map/finer.png")
    regions = web.db.result_detail(rid)["regions"]
    assert page.locator("#regions rect").count() == len(regions) > 0
    for name in ("gradcam", "finer_reverse"):
        page.check(f"input[name=map][value={name}]")
        wait_js(page, f"document.getElementById('overlay').src.endsWith('/map/{name}.png') && "
                               "document.getElementById('overlay').complete && "
                               "document.getElementById('overlay').naturalWidth > 0")
    page.locator("#opacity").fill("80")
    assert overlay.evaluate("el => el.style.opacity") == "0.8"
    page.check("input[name=map][value=none]")
    assert overlay.evaluate("el => el.hidden")
    page.check("input[name=map][value=finer]")
    page.uncheck("#show-regions")
    assert page.locator("#regions").evaluate("el => el.style.display") == "none"
    page.check("#show-regions")
    # Evidence: each region crop beside the contrast species' reference crops, all real images.
    crops = page.locator(".crops img")
    assert crops.count() > 0
    wait_js(page, "Array.from(document.querySelectorAll('.crops img')).every(i => i.complete)")
    assert all(w > 0 for w in crops.evaluate_all("imgs => imgs.map(i => i.naturalWidth)"))
    assert page.locator(".expert").count() == page.locator("article.trait").count()
    shot(page, backend, "photo")
    page.click("#controls-link")
    effects = page.locator("#effects td.effect").all_inner_texts()
    assert len(effects) == len(page.locator("#effects tr").all()) - 1 and all(e[0] in "+-" for e in effects)
    assert page.locator("#controls td.effect").count() > 0
    page.go_back()
    # A trait the expert list confirms shows the expert's sentence.
    from traits.review import AssertionFilter, browse

    confirmed = browse(web.db, AssertionFilter(expert_status="confirmed"), limit=1)
    assert confirmed, "the synthetic expert list confirms some traits of this model"
    page.goto(f"{base}/result/{confirmed[0]['result_id']}")
    text = page.locator(f"#a{confirmed[0]['id']} .expert").inner_text()
    assert text.startswith("Expert lists: confirmed — “") and text.endswith("”")


def test_accept_reject_and_edit_with_a_note(page, site, backend) -> None:
    base, web = site
    rid = first_result_id(web)
    page.goto(f"{base}/result/{rid}")
    articles = page.locator("article.trait")
    ids = [int(i) for i in articles.evaluate_all("els => els.map(e => e.dataset.id)")]
    assert len(ids) >= 3
    first = page.locator(f"#a{ids[0]}")
    first.locator("input[name=note]").fill("clear on the photo")
    first.locator("button.accept").click()
    page.wait_for_load_state()
    assert page.locator(f"#a{ids[0]} .status-word").inner_text() == "accepted"
    page.locator(f"#a{ids[1]} input[name=note]").fill("a shadow, not a band")
    page.locator(f"#a{ids[1]} button.reject").click()
    page.wait_for_load_state()
    assert page.locator(f"#a{ids[1]} .status-word").inner_text() == "rejected"
    third = page.locator(f"#a{ids[2]}")
    third.locator("summary", has_text="Edit the trait").click()
    third.locator("input[name=value]").fill("crimson")
    third.locator("select[name=direction]").select_option("-")
    third.locator("input[name=note]").fill("the colour is crimson")
    third.locator("button.edit").click()
    page.wait_for_load_state()
    assert "crimson" in page.locator(f"#a{ids[2]} .edited").inner_text()
    h0, h1, h2 = (curations(web, i) for i in ids[:3])
    assert [(h["status"], h["curator"], h["note"]) for h in h0] == [("accepted", "Test Curator", "clear on the photo")]
    assert [(h["status"], h["note"]) for h in h1] == [("rejected", "a shadow, not a band")]
    assert (h2[-1]["value"], h2[-1]["direction"], h2[-1]["part"], h2[-1]["status"]) == ("crimson", "-", None, "accepted")
    assert all(h["curated_at"] is not None for h in h0 + h1 + h2)
    shot(page, backend, "photo-curated")


def test_keyboard_shortcuts_go_through_the_queue(page, site, backend) -> None:
    base, web = site
    page.goto(base + "/traits?status=pending")
    ids = [int(i) for i in page.locator("#queue tr[data-id]").evaluate_all("rows => rows.map(r => r.dataset.id)")]
    page.keyboard.press("j")  # the second row
    page.keyboard.press("n")
    page.keyboard.type("seen on every photo")
    page.keyboard.press("Escape")
    page.keyboard.press("a")
    wait_js(page, f"document.querySelector('tr[data-id=\"{ids[1]}\"] .status').textContent"
                           ".startsWith('accepted')")
    page.keyboard.press("r")  # the selection moved on to the third row
    wait_js(page, f"document.querySelector('tr[data-id=\"{ids[2]}\"] .status').textContent"
                           ".startsWith('rejected')")
    assert [(h["status"], h["note"]) for h in curations(web, ids[1])] == [("accepted", "seen on every photo")]
    assert [h["status"] for h in curations(web, ids[2])] == ["rejected"]
    assert curations(web, ids[0]) == []
    shot(page, backend, "queue-keyboard")


def test_a_stale_concurrent_edit_is_refused(browser, site, backend) -> None:
    base, web = site
    rid = first_result_id(web)
    ctx_a, ctx_b = browser.new_context(), browser.new_context()
    try:
        a, b = ctx_a.new_page(), ctx_b.new_page()
        a.goto(f"{base}/result/{rid}")
        b.goto(f"{base}/result/{rid}")
        aid = int(a.locator("article.trait").last.get_attribute("data-id"))
        before = len(curations(web, aid))
        a.locator(f"#a{aid} input[name=note]").fill("curator A was first")
        a.locator(f"#a{aid} button.accept").click()
        a.wait_for_load_state()
        b.locator(f"#a{aid} input[name=note]").fill("curator B, too late")
        with b.expect_response(lambda r: r.url.endswith("/curate")) as info:
            b.locator(f"#a{aid} button.reject").click()
        assert info.value.status == 409
        text = b.locator("#error").inner_text()
        assert "curated by someone else" in text and "Reload the page" in text
        assert "curator B, too late" in text  # what B typed is shown back, not lost
        hist = curations(web, aid)
        assert len(hist) == before + 1 and hist[-1]["status"] == "accepted"
        shot(b, backend, "stale-edit")
    finally:
        ctx_a.close()
        ctx_b.close()


def test_upload_describe_and_save_as_a_run(page, site, backend, synthetic_species_dir) -> None:
    base, web = site
    photo = next((synthetic_species_dir / "images" / "Synthia_rubra").glob("*.png"))
    runs_before = len(web.db.runs())
    page.goto(base + "/describe")
    page.set_input_files("input[name=photo]", str(photo))
    page.fill("input[name=target]", "Synthia rubra")
    page.fill("input[name=contrast]", "synthia aurantiaca")
    page.select_option("select[name=side]", "upper")
    page.click("#describe")
    page.wait_for_selector("#paragraph")
    assert "Synthia rubra" in page.locator("h1").inner_text()
    assert "upperside" in page.locator("#side").inner_text()
    assert page.locator(".figures img").count() == 4  # photo + three maps
    shot(page, backend, "described")
    page.click("#save")
    page.wait_for_url("**/result/*")
    rid = int(page.url.rsplit("/", 1)[1].split("#")[0])
    detail = web.db.result_detail(rid)
    assert (detail["taxon"], detail["contrast"]) == ("Synthia rubra", "Synthia aurantiaca")
    assert detail["configuration"]["contrast"] == "web"
    assert len(web.db.runs()) == runs_before + 1
    import sqlalchemy as sa

    from traits import db as tdb
    with web.db.connect() as conn:  # the saved traits carry the side the curator gave
        sides = conn.execute(sa.select(tdb.traits.c.side).join(
            tdb.trait_assertions, tdb.trait_assertions.c.trait_id == tdb.traits.c.id)
            .where(tdb.trait_assertions.c.result_id == rid)).scalars().all()
    assert sides and set(sides) == {"upper"}
    stored = Path(detail["image_path"])
    assert stored.parent == web.config.uploads.resolve() and stored.name == f"{detail['sha256']}.png"
    wait_js(page, "document.getElementById('overlay').naturalWidth > 0")


def test_describe_a_manifest_photo(page, site, backend) -> None:
    base, web = site
    row = web.manifest[0]
    page.goto(base + "/describe")
    page.select_option("select[name=manifest_row]", "0")
    contrast = "Synthia rubra" if row.species != "Synthia rubra" else "Synthia aurantiaca"
    page.fill("input[name=contrast]", contrast)
    page.click("#describe")
    page.wait_for_selector("#paragraph")
    assert page.locator("h1").inner_text() == f"{row.species} vs {contrast}"  # the manifest's species is the target


def test_compare_two_species_shows_auroc(page, site, backend) -> None:
    base, _ = site
    page.goto(base + "/compare?a=Synthia+aurantiaca&b=Synthia+rubra")
    cells = page.locator("#pair-traits td.auroc").all_inner_texts()
    assert cells and all(0.0 <= float(c) <= 1.0 for c in cells)
    shot(page, backend, "compare")


def test_export_the_filter_as_dwca_and_csv(page, site, backend, tmp_path) -> None:
    import pandas as pd
    from dwca.read import DwCAReader

    base, web = site
    page.goto(base + "/traits?species=Synthia+aurantiaca")
    n = int(page.locator(".pager").inner_text().split("(")[1].split()[0])
    with page.expect_download() as info:
        page.click("#export-dwca")
    path = tmp_path / "export.zip"
    info.value.save_as(path)
    with DwCAReader(str(path)) as dwca:
        names = {r.data["http://rs.tdwg.org/dwc/terms/scientificName"] for r in dwca}
        mof = [e for r in dwca for e in r.extensions]
    assert names == {"Synthia aurantiaca"} and len(mof) == n
    with page.expect_download() as info:
        page.click("#export-csv")
    info.value.save_as(tmp_path / "export.csv")
    frame = pd.read_csv(tmp_path / "export.csv")
    assert len(frame) == n and set(frame.scientific_name) == {"Synthia aurantiaca"}
    response = page.request.get(base + page.locator("#export-parquet").get_attribute("href"))
    assert response.ok
    (tmp_path / "export.parquet").write_bytes(response.body())
    table = pd.read_parquet(tmp_path / "export.parquet")
    assert sorted(table.assertion_id) == sorted(frame.assertion_id)


def test_the_database_holds_one_schema(site) -> None:
    """The app wrote through traits.db: the tables are exactly the CLI's (no second schema)."""
    from traits.db import metadata

    _, web = site
    with web.db.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names()) - {"alembic_version"}
    assert tables == set(metadata.tables)
