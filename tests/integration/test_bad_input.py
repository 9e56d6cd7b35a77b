"""Bad input through the whole extract path with the real image encoder: a truncated JPEG stops the run
with its file and table row named, or with --skip-bad is skipped and recorded in the manifest."""
from __future__ import annotations

from helpers.fakes import recorded_bad

from PIL import Image
from click.testing import CliRunner

from latentfuse.cli import app

runner = CliRunner()


def make_table(tmp_path):
    rows = ["image,text,split"]
    for i in range(4):
        Image.new("RGB", (64, 48), (40 * i, 90, 200 - 40 * i)).save(tmp_path / f"img{i}.jpg", quality=90)
        rows.append(f"img{i}.jpg,a picture number {i},train")
    whole = (tmp_path / "img2.jpg").read_bytes()
    (tmp_path / "img2.jpg").write_bytes(whole[: len(whole) // 2])  # truncated mid-scan
    (tmp_path / "pairs.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "pairs.csv"


def extract(table, store, *extra):
    return runner.invoke(app, ["extract", "--data", f"pairs:{table}", "-e", "image=efficientnet-lite0",
                               "-e", "text=minilm-l6", "--store", str(store), *extra])


def test_truncated_image_names_file_and_row(tmp_path):
    table = make_table(tmp_path)
    result = extract(table, tmp_path / "store")
    assert result.exit_code != 0
    message = str(result.exception)
    assert "img2.jpg" in message and "truncated" in message
    assert "(pairs.csv:4)" in message and "--skip-bad" in message  # file:line of the row


def test_skip_bad_records_the_image_and_keeps_the_rest(tmp_path):
    table = make_table(tmp_path)
    result = extract(table, tmp_path / "store", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert "train: image=3, text=4 features" in result.output
    bad = recorded_bad(tmp_path / "store")
    assert len(bad) == 1 and "truncated" in bad[0]
    strict = extract(table, tmp_path / "store")  # the cache remembers the skip; a strict run must not inherit it
    assert strict.exit_code != 0
    assert "img2.jpg" in str(strict.exception) and "earlier --skip-bad run skipped it" in str(strict.exception)


def test_missing_column_is_named(tmp_path):
    (tmp_path / "pairs.csv").write_text("image,words\na.jpg,hello\n")  # "caption" would be read as the text
    result = extract(tmp_path / "pairs.csv", tmp_path / "store")
    assert result.exit_code != 0
    assert "pairs.csv: missing column 'text' (or caption, title, sentence, captions); found columns: image, words" \
        in str(result.exception) and "--columns ROLE=COLUMN" in str(result.exception)
