"""``wordnet[:DIR]`` — WordNet 3.0 word ↔ gloss pairs, a text–text set, from Debian's ``wordnet-base``.

Default DIR is where ``apt-get install wordnet-base`` puts the database (``/usr/share/wordnet``). The four
WNDB data files ``data.noun``, ``data.verb``, ``data.adj`` and ``data.adv`` are read; each synset line is
``offset lex_filenum ss_type w_cnt word lex_id [word lex_id ...] p_cnt [pointers ...] [frames ...] | gloss``
(``man 5 wndb``), with ``w_cnt`` in hex. Lines starting with a space are the licence header.

Sides, both text:

* ``text_a``: one item per (synset, word): the lemma with ``_`` → space and the adjective position
  marker dropped (``galore(ip)`` → ``galore``), case as WordNet has it (``Canis familiaris``).
  Id ``<p><offset>#<lemma as in the file>``, e.g. ``n02084071#dog``, ``n02084071#domestic_dog``.
* ``text_b``: one item per synset: the definition part of its gloss, i.e. the gloss up to the first
  ``; "`` that starts the usage examples (``a member of the genus Canis ... ; occurs in many breeds``);
  a gloss with no definition part (examples only) keeps its whole text. Id ``<p><offset>``, e.g.
  ``n02084071``. ``<p>`` is the file's part of speech: ``n``, ``v``, ``a`` (adjectives, satellites
  included), ``r`` (adverbs); offsets are unique within a file, so ids are unique and never change.
* pairs: every word of a synset ↔ that synset's gloss (a gloss has 1–28 words, like an image has
  several captions). 117,659 synsets, 206,978 pairs in WordNet 3.0.

Splits ``train`` / ``val`` / ``test`` ≈ 80 / 10 / 10 % **by synset**: ``blake2b("<p><offset>")`` (8 bytes,
little-endian) mod 10 → 0–7 train, 8 val, 9 test. So a gloss and all its words are in one split, and
the split of a synset never depends on the rest of the file. ``SplitData.labels`` gives each item its
lexicographer file (``noun.animal``, ``verb.motion``, …). Parsing all four files takes ≈0.5 s (once per
source object), each split's load ≈0.3 s at most.
"""
from __future__ import annotations

import gc
import hashlib
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import DataError
from ..utils.hashing import digest, file_digest
from . import SOURCES
from ._common import source_path
from .base import Item, Side, Source, SplitData

DEFAULT_DIR = Path("/usr/share/wordnet")
FILES = (("n", "data.noun"), ("v", "data.verb"), ("a", "data.adj"), ("r", "data.adv"))
SPLITS = ("train", "val", "test")
LEXNAMES = (  # lexicographer file names, by lex_filenum (lexnames(5WN))
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling",
    "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process", "noun.quantity", "noun.relation",
    "noun.shape", "noun.state", "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition", "verb.consumption", "verb.contact",
    "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
)  # fmt: skip
_VERSION = "wordnet/1"  # bump when ids, texts or the split rule change: it is part of the fingerprint
_MARKER = re.compile(r"\((?:a|p|ip)\)$")
_INSTALL = "install Debian's package (`apt-get install wordnet-base`) or pass wordnet:DIR"

Synset = tuple[str, str, list[tuple[str, str]], str, str]  # (gloss id, definition, [(word id, word)], lexname, origin)


def split_of(synset_id: str) -> str:
    """The split of a synset id such as ``n02084071``: 80 / 10 / 10 by a hash of the id."""
    bucket = int.from_bytes(hashlib.blake2b(synset_id.encode(), digest_size=8).digest(), "little") % 10
    return "train" if bucket < 8 else ("val" if bucket == 8 else "test")


def definition(gloss: str) -> str:
    """The gloss up to its first usage example (``; "...``); the whole gloss if it has nothing before one."""
    head = gloss.split('; "', 1)[0].strip().rstrip(";").strip()
    return head or gloss.strip()


@SOURCES.register("wordnet")
class WordNet(Source):
    """WordNet word ↔ gloss text pairs from Debian's wordnet-base: wordnet[:DIR]."""

    name = "wordnet"
    sides = (Side("text_a", "text"), Side("text_b", "text"))

    def __init__(self, root: str | None = None, *, skip_bad: bool = False) -> None:
        super().__init__(skip_bad=skip_bad)  # nothing to skip: a malformed data line always raises
        self.root = source_path(root, self.name, "dir") if root else DEFAULT_DIR
        if not self.root.is_dir():
            raise DataError(f"wordnet: directory {self.root} not found; {_INSTALL}")
        missing = [name for _, name in FILES if not (self.root / name).is_file()]
        if missing:
            raise DataError(f"wordnet: {self.root} has no {', '.join(missing)}; is this a WordNet dict directory? "
                            f"({_INSTALL})")
        self._by_split: dict[str, list[Synset]] | None = None

    @property
    def spec(self) -> str:
        return self.name if self.root == DEFAULT_DIR else f"{self.name}:{self.root}"

    @property
    def fingerprint(self) -> str:
        return digest(_VERSION, [(name, _cached_digest(self.root / name)) for _, name in FILES])

    def splits(self) -> list[str]:
        return list(SPLITS)

    def load(self, split: str) -> SplitData:
        self.check_split(split)
        with _no_gc():
            return self._load(split)

    def _load(self, split: str) -> SplitData:
        words: list[Item] = []
        glosses: list[Item] = []
        pairs: list[tuple[str, str]] = []
        labels: dict[str, str] = {}
        for gloss_id, text, members, lexname, origin in self._parsed()[split]:
            glosses.append(Item(gloss_id, text, origin))
            labels[gloss_id] = lexname
            for word_id, word in members:
                words.append(Item(word_id, word, origin))
                pairs.append((word_id, gloss_id))
                labels[word_id] = lexname
        return SplitData(split, self.sides, {"text_a": words, "text_b": glosses}, pairs, labels)

    def _parsed(self) -> dict[str, list[Synset]]:
        if self._by_split is None:
            by_split: dict[str, list[Synset]] = {s: [] for s in SPLITS}
            with _no_gc():
                for pos, name in FILES:
                    for synset in _read(self.root / name, pos):
                        by_split[split_of(synset[0])].append(synset)
            self._by_split = by_split
        return self._by_split


def _read(path: Path, pos: str) -> list[Synset]:
    out: list[Synset] = []
    name = path.name
    text = path.read_text(encoding="utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line[0] == " ":
            continue  # licence header, final newline
        head, sep, gloss = line.partition(" | ")
        try:
            offset, lexnum, _, hexcount, rest = head.split(" ", 4)
            count = int(hexcount, 16)
            fields = rest.split(" ", 2 * count)
            if not sep or len(offset) != 8 or not offset.isdigit() or count < 1 or len(fields) <= 2 * count:
                raise ValueError
            lexname = LEXNAMES[int(lexnum)] if int(lexnum) < len(LEXNAMES) else f"lex{lexnum}"
        except ValueError:
            raise DataError(f"{path}:{number}: not a WNDB synset line; expected "
                            "'offset lex_filenum ss_type w_cnt word lex_id ... p_cnt ... | gloss'") from None
        synset_id = pos + offset
        members: list[tuple[str, str]] = []
        seen: set[str] = set()
        for raw in fields[:2 * count:2]:
            lemma = _MARKER.sub("", raw) if raw[-1] == ")" else raw  # adjective position marker (a) (p) (ip)
            if lemma not in seen:
                seen.add(lemma)
                members.append((f"{synset_id}#{lemma}", lemma.replace("_", " ")))
        out.append((synset_id, definition(gloss), members, lexname, f"{name}:{number}"))
    return out


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building ~10^5 small objects that form no cycles: 3x faster loads."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _cached_digest(path: Path) -> str:
    """Content hash, once per process per (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(path)
    return _DIGESTS[key]
