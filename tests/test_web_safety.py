"""The web app's guards and bad input, over HTTP without a browser (ASGI test client), and the curation queries
it added to traits.review: every bad request gets a clear page and changes nothing."""

from __future__ import annotations

import html
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from tests.db_helpers import make_result
from traits.db import ImageRecord, TraitDB
from traits.errors import StaleEditError
from traits.review import AssertionFilter, browse, count_assertions, history, set_status

A, B = "Synthia aurantiaca", "Synthia rubra"
TRAITS = [("forewing band", "colour", "orange"), ("hindwing", "colour", "red"), ("body", "colour", "black")]


def fill(url: str, photos: Path, n: int = 4) -> TraitDB:
    """A database with n photos of A against B, 3 traits each (expert: confirmed, contradicted, new)."""
    db = TraitDB(url)
    run = db.start_run({"test": "web"}, classifier="models/none")
    photos.mkdir(exist_ok=True)
    for i in range(n):
        path = photos / f"p{i}.png"
        Image.new("RGB", (48, 40), (200, 40 * i, 30)).save(path)
        db.write_image_results(run.id, ImageRecord(f"{i:064x}", str(path), A, width=48, height=40),
                               [make_result(A, B, TRAITS, seed=i, expert=["confirmed", "contradicted", "new"])])
    return db


@pytest.fixture
def db(tmp_path: Path) -> TraitDB:
    d = fill(f"sqlite:///{tmp_path / 'traits.sqlite'}", tmp_path / "photos")
    yield d
    d.close()


def client(app, **kw):
    from starlette.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", **kw)


@pytest.fixture
def web(db: TraitDB, tmp_path: Path, describe_model_dir):
    from pipeline.web import WebConfig, create_app
    from pipeline.web.security import UploadLimits

    app = create_app(WebConfig(db=db.url, models=[describe_model_dir], uploads=tmp_path / "uploads",
                               limits=UploadLimits(max_bytes=50_000, max_pixels=250_000)))
    with client(app) as c:
        c.get("/")  # the cross-site cookie
        c.fastapi = app
        yield c, app.state.web


def csrf(c) -> str:
    return c.cookies.get("ft_csrf")


def png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (180, 60, 20)).save(buf, format="PNG")
    return buf.getvalue()


# --- the curation queries ---------------------------------------------------------------------------------

def test_filters_pages_and_counts(db: TraitDB) -> None:
    assert count_assertions(db) == 12
    first, second = browse(db, offset=0, limit=5), browse(db, offset=5, limit=5)
    assert len(first) == 5 and not {r["id"] for r in first} & {r["id"] for r in second}
    assert count_assertions(db, AssertionFilter(expert_status="confirmed")) == 4
    strong = browse(db, AssertionFilter(min_confidence="strong"), limit=100)
    assert {r["confidence"] for r in strong} == {"strong"} and len(strong) == 4
    set_status(db, [first[0]["id"]], "accepted", "A")
    assert [r["id"] for r in browse(db, AssertionFilter(status="accepted"))] == [first[0]["id"]]
    assert count_assertions(db, AssertionFilter(taxon=B)) == 0
    with pytest.raises(Exception, match="Unknown expert status"):
        AssertionFilter(expert_status="maybe")


def test_a_decision_on_an_old_version_is_refused_and_edits_are_kept(db: TraitDB) -> None:
    aid = browse(db, limit=1)[0]["id"]
    assert set_status(db, [aid], "accepted", "A", "first", expected={aid: 0}) == 1
    version = browse(db, AssertionFilter(assertion_id=aid))[0]["version"]
    with pytest.raises(StaleEditError, match="curated by someone else"):
        set_status(db, [aid], "rejected", "B", "late", expected={aid: 0})
    assert [h["curator"] for h in history(db, aid)] == ["A"]
    set_status(db, [aid], "accepted", "B", "colour", expected={aid: version}, edit={"value": "scarlet", "part": ""})
    row = browse(db, AssertionFilter(assertion_id=aid))[0]
    assert (row["status"], row["curated_value"], row["curated_part"], row["curator"]) == ("accepted", "scarlet", None, "B")
    with pytest.raises(Exception, match="not \\+ or -"):
        set_status(db, [aid], "accepted", "B", edit={"direction": "up"})


def test_a_version_1_database_is_upgraded_keeping_its_curation(tmp_path: Path) -> None:
    from alembic import command

    from traits.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "0001")
    engine.dispose()
    db = TraitDB(url, migrate=False)
    assert db.schema_version() == "0001"
    db.close()
    old = sa.create_engine(url)
    with old.begin() as conn:  # a version-1 curation row, written as the old code did
        conn.exec_driver_sql("INSERT INTO taxa (id, scientific_name, taxon_rank) VALUES (1, 'X', 'species')")
        conn.exec_driver_sql("INSERT INTO runs (id, config_sha256, tool_version, classifier, configuration, "
                             "started_at, status) VALUES (1, 'c', '0', 'm', '{}', '2026-01-01', 'finished')")
        conn.exec_driver_sql("INSERT INTO images (id, sha256, path) VALUES (1, 's', 'p.png')")
        conn.exec_driver_sql("INSERT INTO results (id, run_id, image_id, taxon_id, contrast_taxon_id, created_at) "
                             "VALUES (1, 1, 1, 1, 1, '2026-01-01')")
        conn.exec_driver_sql("INSERT INTO traits (id, part, attribute, value, side) VALUES (1, 'p', 'a', 'v', '')")
        conn.exec_driver_sql("INSERT INTO trait_assertions (id, result_id, rank, taxon_id, contrast_taxon_id, "
                             "trait_id, determined_by_run_id, determined_date) VALUES (1, 1, 1, 1, 1, 1, 1, "
                             "'2026-01-01')")
        conn.exec_driver_sql("INSERT INTO curation (assertion_id, status, curator, curated_at, note) "
                             "VALUES (1, 'accepted', 'old', '2026-01-02', 'kept')")
    old.dispose()
    with TraitDB(url) as db:
        assert db.schema_version() == "0002"
        assert [(h["curator"], h["note"], h["value"]) for h in history(db, 1)] == [("old", "kept", None)]


# --- the guard ------------------------------------------------------------------------------------------

def test_every_data_changing_route_needs_the_cross_site_token(web, db: TraitDB) -> None:
    from fastapi.routing import APIRoute

    from pipeline.web import curate, studio

    c, state = web
    # Every router the app includes (a FastAPI version wraps included routers, so read them at the source).
    routes = [*c.fastapi.routes, *curate.router.routes, *studio.router.routes]
    posts = [r.path for r in routes if isinstance(r, APIRoute) and "POST" in r.methods]
    assert set(posts) == {"/curate", "/curator", "/describe", "/describe/save"}
    aid = browse(db, limit=1)[0]["id"]
    for path in posts:
        r = c.post(path, data={"assertion_id": str(aid), "version": "0", "action": "accept"})
        assert r.status_code == 403 and "security token is missing" in r.text, path
        r = c.post(path, data={"csrf": "forged", "assertion_id": str(aid), "action": "accept"})
        assert r.status_code == 403, path
    r = c.post("/curate", data={"csrf": csrf(c), "assertion_id": str(aid), "version": "0", "action": "accept"},
               headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert history(db, aid) == []
    r = c.post("/curate", data={"csrf": csrf(c), "assertion_id": str(aid), "version": "0", "action": "accept"},
               follow_redirects=False)
    assert r.status_code == 303 and [h["status"] for h in history(db, aid)] == ["accepted"]


def test_only_localhost_by_default_and_a_token_elsewhere(db: TraitDB, tmp_path: Path) -> None:
    from pipeline.web import WebConfig, create_app
    from pipeline.web.security import check_bind
    from traits.errors import BadValueError, ConflictingOptionsError

    assert check_bind("127.0.0.1", False, None) is None
    with pytest.raises(ConflictingOptionsError, match="--allow-remote"):
        check_bind("0.0.0.0", False, None)
    assert len(check_bind("0.0.0.0", True, None)) >= 24  # a random token when none is given
    with pytest.raises(BadValueError, match="shorter than 16"):
        check_bind("0.0.0.0", True, "short")
    local = create_app(WebConfig(db=db.url, uploads=tmp_path / "u"))
    from starlette.testclient import TestClient

    with TestClient(local, base_url="http://attacker.example") as c:  # DNS rebinding: a foreign Host header
        r = c.get("/traits")
        assert r.status_code == 400 and "only to localhost" in r.text
    token = "s3cret-token-for-the-team"
    remote = create_app(WebConfig(db=db.url, host="0.0.0.0", token=token, uploads=tmp_path / "u"))
    with TestClient(remote, base_url="http://10.1.2.3") as c:
        r = c.get("/traits")
        assert r.status_code == 401 and "needs its access token" in r.text and "Synthia" not in r.text
        assert c.get("/traits", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/traits", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        r = c.get(f"/traits?token={token}&status=pending", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/traits?status=pending"
        assert c.get("/traits?status=pending").status_code == 200  # the cookie now carries the token


def test_bad_uploads_are_refused_with_a_message(web) -> None:
    c, state = web
    form = {"csrf": csrf(c), "contrast": "Synthia rubra"}
    r = c.post("/describe", data=form, files={"photo": ("notes.jpg", b"just some text, not a photo", "image/jpeg")})
    assert r.status_code == 400 and "is not a JPEG, PNG" in r.text and "its content was checked" in r.text
    r = c.post("/describe", data=form, files={"photo": ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * 400_000, "image/png")})
    assert r.status_code == 413 and "above the 50 KB limit; it was not read" in r.text
    r = c.post("/describe", data=form, files={"photo": ("cut.png", png_bytes()[:60], "image/png")})
    assert r.status_code == 400 and "damaged or unreadable image" in r.text
    r = c.post("/describe", data=form, files={"photo": ("huge.png", png_bytes((600, 600)), "image/png")})
    assert r.status_code == 400 and "pixel limit" in r.text
    r = c.post("/describe", data={**form, "contrast": "Synthia rubrra"},
               files={"photo": ("ok.png", png_bytes(), "image/png")})
    assert r.status_code == 400 and "Unknown species 'Synthia rubrra'. Did you mean 'Synthia rubra" in html.unescape(r.text)
    r = c.post("/describe", data={**form, "manifest_row": "../../etc/passwd"})
    assert r.status_code == 400 and "no manifest row" in r.text
    assert not list((state.config.uploads).glob("*")) if state.config.uploads.exists() else True


def test_no_request_path_reaches_the_file_system(web) -> None:
    c, _ = web
    for path in ("/static/..%2f..%2f..%2fpyproject.toml", "/static/../app.py", "/static/%2e%2e/app.py",
                 "/result/..%2f..%2fetc%2fpasswd/photo.jpg", "/result/1/map/..%2f..%2fcard.png",
                 "/result/1/map/secret.png"):
        r = c.get(path)
        assert r.status_code in (404, 422), path
        assert "[project]" not in r.text and "import" not in r.text


def test_missing_model_and_unknown_pages_say_what_to_do(db: TraitDB, tmp_path: Path, capsys) -> None:
    from pipeline.cli import main
    from pipeline.web import WebConfig, create_app

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--db", db.url, "--model", str(tmp_path / "no-model")])
    assert exit_info.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "[FT005] Model directory" in err and "does not exist" in err and "How to fix" in err
    app = create_app(WebConfig(db=db.url, uploads=tmp_path / "u"))
    with client(app) as c:
        c.get("/")
        r = c.post("/describe", data={"csrf": csrf(c), "contrast": "x"},
                   files={"photo": ("a.png", png_bytes(), "image/png")})
        assert r.status_code == 503 and "started without a model" in r.text and "--model" in r.text
        r = c.get("/result/999999")
        assert r.status_code == 404 and "There is no page" in r.text
        r = c.get("/traits?run=abc")
        assert r.status_code == 400 and "not a whole number" in r.text and "Traceback" not in r.text
        r = c.get("/result/abc")
        assert r.status_code == 422 and "not allowed (result_id)" in r.text and "<!doctype html>" in r.text


def test_a_read_only_database_gives_a_clear_page_and_keeps_the_note(db: TraitDB, tmp_path: Path) -> None:
    from pipeline.web import WebConfig, create_app

    path = db.url.removeprefix("sqlite:///")
    app = create_app(WebConfig(db=f"sqlite:///file:{path}?mode=ro&uri=true", uploads=tmp_path / "u"))
    aid = browse(db, limit=1)[0]["id"]
    with client(app) as c:
        assert c.get("/traits").status_code == 200  # reading works
        c.get("/")
        r = c.post("/curate", data={"csrf": csrf(c), "assertion_id": str(aid), "version": "0", "action": "reject",
                                    "note": "the band is a shadow"})
        assert r.status_code == 503 and "read-only" in r.text and "Traceback" not in r.text
        assert "the band is a shadow" in r.text  # what the curator typed comes back
    assert history(db, aid) == []
