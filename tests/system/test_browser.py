"""The web page, end to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright) against a
real server on loopback: type a query → see the result images; upload an image → see it found; bad upload
→ see the error. Skips, saying why, only where Chromium or Playwright is absent (`make test` installs both).
"""
from __future__ import annotations


import pytest

from latentfuse.index import open_index
from latentfuse.serve import create_app
from helpers.live import live_server
from helpers.shapes import VARIANTS, is_match, saved_index
from helpers.fixtures import shown


# Flags for a sandbox without network: no first-run, sync or background connections (they would be refused).




@pytest.fixture(scope="module")
def site(shapes, tmp_path_factory):
    out = saved_index(shapes, tmp_path_factory.mktemp("browser") / "ix").directory
    with live_server(create_app(open_index(out))) as url:
        yield url, out




def test_typing_a_query_shows_the_matching_images(browser, site):
    url, index_dir = site
    page = browser.new_page()
    page.goto(url + "/")
    page.wait_for_function("document.getElementById('info').textContent.includes('40 image items')")
    page.fill("#query", "a red square")
    page.press("#query", "Enter")
    ids = shown(page)
    assert len(ids) == 10 and page.locator(".hit img").count() == 10
    assert all(is_match(i, "red", "square") for i in ids[:VARIANTS]), ids
    assert ids == [h.id for h in open_index(index_dir).search(text="a red square", k=10)]
    sizes = page.eval_on_selector_all(".hit img", "imgs => imgs.map(i => i.naturalWidth)")
    assert all(width == 128 for width in sizes)  # real thumbnails decoded by the browser
    assert "10 results in" in page.inner_text("#status")

    page.locator(".hit .similar").nth(3).click()  # more like the 4th result: it comes back first
    again = shown(page)
    assert again[0] == ids[3] and f"like {ids[3]}" in page.inner_text("#status")
    page.close()


def test_the_filter_fields_keep_other_labels_out_of_search_and_similar(browser, shapes, tmp_path):
    out = saved_index(shapes, tmp_path / "ix", data=f"imagefolder:{shapes['images']}").directory  # labels: colours
    expected = [h.id for h in open_index(out).search(text="a red circle", k=10, where="label IN ('blue', 'green')")]
    with live_server(create_app(open_index(out))) as url:
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#query", "a red circle")
        page.fill("#f-label", " blue,green ")
        page.press("#query", "Enter")
        ids = shown(page)
        assert ids == expected and {i.split("/")[0] for i in ids} == {"blue", "green"}, ids
        page.locator(".hit .similar").nth(2).click()  # more like the 3rd result, under the same filter
        again = shown(page)
        assert again[0] == ids[2] and {i.split("/")[0] for i in again} <= {"blue", "green"}, again
        page.close()


def test_uploading_an_image_finds_it(browser, site, shapes):
    url, _ = site
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#image", str(shapes["images"] / "yellow" / "circle-2.png"))
    page.select_option("#k", "5")
    page.click("#go")
    ids = shown(page)
    assert ids[0] == "yellow/circle-2.png" and all(is_match(i, "yellow", "circle") for i in ids), ids
    page.close()


def test_a_bad_upload_shows_the_servers_message(browser, site, tmp_path):
    url, _ = site
    fake = tmp_path / "notes.png"
    fake.write_text("not really a picture")
    page = browser.new_page()
    page.goto(url + "/")
    page.set_input_files("#image", str(fake))
    page.click("#go")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "the upload is not an image" in page.inner_text("#error")
    assert page.locator(".hit").count() == 0
    page.close()
