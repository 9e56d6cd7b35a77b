"""Search on real Flickr8k photos (skipped without ../shared/data): a model fitted on 160 training images,
an index of test-split images, and the same top-10 from the CLI, the HTTP API and the web page."""
from __future__ import annotations

import json

import httpx
import pytest
from click.testing import CliRunner

import latentfuse
from latentfuse.cli import app
from latentfuse.config import StoreConfig
from latentfuse.index import open_index
from latentfuse.serve import create_app
from helpers.live import live_server
from helpers.fixtures import shown

QUERIES = ["a dog runs through the grass", "a child in a swimming pool", "people walking down a city street"]


@pytest.fixture(scope="module")
def flickr_index(small_pairs):  # noqa: F811
    tmp, table, _ = small_pairs
    store = StoreConfig(root=str(tmp / "store"))
    latentfuse.fit(f"pairs:{table}", out=tmp / "search-model", method="cca",
                   encoders={"image": "efficientnet-lite0", "text": "minilm-l6"},
                   config={"store": {"root": store.root}, "method": {"options": {"dim": 32}},
                           "data": {"val_split": ""}}, progress=False)
    result = CliRunner().invoke(app, ["index", "--model", str(tmp / "search-model"), "--data", f"pairs:{table}",
                                      "--split", "test", "--out", str(tmp / "search-index"), "--store", store.root])
    assert result.exit_code == 0, result.output
    return tmp / "search-index"


def cli_top10(index_dir, query: str) -> list[str]:
    result = CliRunner().invoke(app, ["search", "--index", str(index_dir), query, "-k", "10", "--json"])
    assert result.exit_code == 0, result.output
    return [r["id"] for r in json.loads(result.output)["results"]]


@pytest.mark.slow
def test_cli_api_and_web_page_agree_on_flickr8k(flickr_index, browser):  # noqa: F811
    with live_server(create_app(open_index(flickr_index))) as url:
        page = browser.new_page()
        page.goto(url + "/")
        for query in QUERIES:
            api = [r["id"] for r in httpx.get(url + "/search", params={"q": query, "k": 10}).json()["results"]]
            page.fill("#query", query)
            page.press("#query", "Enter")
            assert cli_top10(flickr_index, query) == api == shown(page), query
            assert len(set(api)) == 10
        page.close()
