"""Remove training rows that overlap evaluation data, in the evaluation data's own language.

Evaluation sets are the build's own test split and any external sets the recipe names (a local
file or a Hub dataset, with the columns to compare). A training row is compared through each text
it has: its turns (``messages``) and, for a row a translate stage translated, its original turns
(``source_messages``, in ``source_lang``); it is contaminated when either matches an evaluation
text. Four measures, all over word n-grams of the same size ``ngram``:

- ``ngram``: at least ``min_overlap`` distinct n-grams shared with one evaluation text (GPT-3's
  13-gram rule);
- ``containment``: the share of an evaluation text's distinct n-grams found in the row reaches
  ``threshold`` (a row that quotes an evaluation prompt inside a longer turn still matches);
- ``minhash``: the Jaccard of the two n-gram sets reaches ``threshold`` (the name recipes have
  used since MinHash estimated it; it is now computed exactly, so no pair at the threshold is missed);
- ``copy``: the row holds a copy of the evaluation text, quoted or lightly edited: all its words in
  order with at most 1 + ``edit_rate`` word edits per rare n-gram of the text the row holds
  (:mod:`dataset_builder.similarity.align`). An n-gram is rare when at most ``rare_rows`` rows hold it,
  not counting the text's own copies (rows holding ``copy_containment`` of its n-grams), and
  counting once the candidate rows with the same words where the text sits (one edited copy asked
  in several rows): a phrase in hundreds of rows is no evidence, a text copied into hundreds of
  rows still is. A text is also compared with its parts reversed (the input first) and with two
  of a part's sentences traded. Rows that only
  share phrasing with a text ("the factorial of a given number") are kept: one edit away at most.
  A text found in ``min_copies`` rows or more is removed from every row holding 0.6 of its n-grams.

Every score is exact over 64-bit n-gram hashes (:mod:`dataset_builder.similarity.overlap`).

An evaluation text with fewer words than ``ngram`` is compared as one n-gram of all its words
(the rows' n-grams are taken at that size too); one with fewer than ``min_eval_words`` words is
skipped and counted. Only rows of the train split (or rows without a split) are ever removed.

A translate stage placed before this one cannot silently defeat it: rows read in an evaluation
set's language that are now in another language without their original turns stop the build.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from dataset_builder.errors import RecipeError, UserError
from dataset_builder.rows import Role, row_text
from dataset_builder.similarity.align import diagonals, edit_counts
from dataset_builder.similarity.overlap import distinct_counts, shared_shingles
from dataset_builder.similarity.shingles import Shingles, fold_text, ngrams, words
from dataset_builder.sources.eval_sets import EvalSet, EvalTexts, read_eval_set
from dataset_builder.stages.base import Stage, StageConfig, StageContext, gather

Method = Literal["ngram", "containment", "minhash", "copy"]

# Per method: the n-gram size and the settings that apply to it, with their defaults. One value
# does not fit all: 13-grams make sense for counting verbatim overlaps (GPT-3), but a containment
# or Jaccard score over 13-grams collapses when one word of a short prompt changes.
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "ngram": {"ngram": 13, "min_overlap": 1},
    "containment": {"ngram": 3, "threshold": 0.6},
    "minhash": {"ngram": 5, "threshold": 0.8},
    # Chosen on half of a real instruction set, its other half kept for the figures (docs/benchmarks.md).
    "copy": {"ngram": 3, "edit_rate": 0.7, "rare_rows": 1, "min_copies": 50, "copy_containment": 0.8},
}
_METHOD_KEYS = ("min_overlap", "threshold", "edit_rate", "rare_rows", "min_copies", "copy_containment")
# The copy method looks at pairs sharing at least this share of the text's n-grams (what
# containment removed by default). One dropped word of a text of 10 words or more leaves that much
# of its 3-grams (of 8 or 9 words, a word dropped inside it does not: such a copy is missed); a text
# found in min_copies rows is removed from all of these rows.
_COPY_CANDIDATES = 0.6


class DecontaminateConfig(StageConfig):
    test_split: bool = True
    eval_sets: list[EvalSet] = Field(default_factory=list)
    fields: list[Role] = Field(default_factory=lambda: ["user", "assistant"], min_length=1)
    test_fields: list[Role] = Field(default_factory=lambda: ["user"], min_length=1)
    method: Method = "ngram"
    ngram: int = Field(default=13, ge=1, le=64)
    min_overlap: int | None = Field(default=None, ge=1)
    threshold: float | None = Field(default=None, gt=0.0, le=1.0)
    edit_rate: float | None = Field(default=None, ge=0.0, le=5.0)
    rare_rows: int | None = Field(default=None, ge=0)
    min_copies: int | None = Field(default=None, ge=2)
    copy_containment: float | None = Field(default=None, gt=_COPY_CANDIDATES, le=1.0)
    min_eval_words: int = Field(default=3, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _method_defaults(cls, data: Any) -> Any:
        """Fill in the chosen method's defaults; refuse settings another method would use."""
        if not isinstance(data, dict):
            return data
        method = data.get("method", "ngram")
        defaults = METHOD_DEFAULTS.get(method)
        if defaults is None:
            return data  # the field validation names the bad method
        for key in _METHOD_KEYS:
            if key not in defaults and data.get(key) is not None:
                users = [m for m, d in METHOD_DEFAULTS.items() if key in d]
                raise ValueError(f"'{key}' applies to method {' or '.join(users)}, not {method!r}")
        return {**defaults, **{k: v for k, v in data.items() if v is not None}}

    def settings(self) -> dict[str, Any]:
        """The effective comparison settings, for the stage's counters."""
        out: dict[str, Any] = {"method": self.method, "ngram": self.ngram}
        out.update({k: getattr(self, k) for k in _METHOD_KEYS if getattr(self, k) is not None})
        out["min_eval_words"] = self.min_eval_words
        return out


def _reorder(evals: EvalTexts) -> None:
    """Fill ``orders``: each text as it is, then (for the copy method, which aligns words in
    order) its input before its instruction, and its sentences with two of them traded."""
    evals.orders, evals.origin = list(evals.texts), list(range(len(evals.texts)))
    for k, parts in enumerate(evals.parts):
        for text in _other_orders(parts):
            evals.orders.append(text)
            evals.origin.append(k)


@dataclass(frozen=True)
class _Match:
    score: float
    text: int  # which text of the set
    view: int  # which text of the row (see _views)
    n: int  # the n-gram size compared
    edits: int = -1  # copy: the edits of the text's best alignment in the row
    copies: int = 0  # copy: rows holding copy_containment of the text's n-grams
    rare: int = 0  # copy: the text's rare n-grams the row holds
    shared: int = 0  # copy: the text's distinct n-grams the row holds


def _views(
    rows: list[dict[str, Any]], train: list[int], roles: list[str]
) -> tuple[list[str], list[int], list[bool], list[str | None]]:
    """Every text a training row is compared through: its turns, and its original turns when a
    translate stage kept them. Returns texts, the training row of each, whether it is the row's
    original text, and its language."""
    texts, owner, original, lang = [], [], [], []
    for k, i in enumerate(train):
        row = rows[i]
        source = row.get("source_messages")
        texts.append(row_text(row["messages"], roles))
        owner.append(k)
        original.append(source is None)
        lang.append(row["lang"])
        if source is not None:
            texts.append(row_text(source, roles))
            owner.append(k)
            original.append(True)
            lang.append(row.get("source_lang"))
    return texts, owner, original, lang


def _view_messages(rows: list[dict[str, Any]], train: list[int]) -> list[list[dict[str, str]]]:
    """The turns behind each text of :func:`_views`, in the same order."""
    return [
        turns
        for i in train
        for turns in (rows[i]["messages"], rows[i].get("source_messages"))
        if turns is not None
    ]


def _token_continuations(texts: list[str], q_words: Shingles) -> np.ndarray:
    """Per word of ``q_words`` (the words of ``texts``): whether it continues the whitespace-separated
    token of the word before it (``input_string`` folds into two words, ``/path/to/x`` into three)."""
    tokens = [t.split() for t in texts]
    per_text = np.array([len(ts) for ts in tokens], dtype=np.int64)
    counts = words([w for ts in tokens for w in ts]).counts()
    owner = np.repeat(np.arange(len(texts)), per_text)
    totals = np.bincount(owner, weights=counts, minlength=len(texts)).astype(np.int64)
    joined = np.ones(int(counts.sum()), dtype=bool)
    joined[(np.cumsum(counts) - counts)[counts > 0]] = False
    # A token folded alone as it was in its text (NFKC could differ at a token's edge; then the
    # text's words are left unjoined).
    agree = totals == q_words.counts()
    out = np.zeros(len(q_words.hashes), dtype=bool)
    out[np.repeat(agree, q_words.counts())] = joined[np.repeat(agree, totals)]
    return out


def _distinct_shingles(sh: Shingles) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, hash)`` of every distinct shingle of every document, by owner then hash."""
    owner = np.repeat(np.arange(sh.num_docs, dtype=np.int64), sh.counts())
    order = np.lexsort((sh.hashes, owner))
    owner, hashes = owner[order], sh.hashes[order]
    keep = (
        np.concatenate([[True], (owner[1:] != owner[:-1]) | (hashes[1:] != hashes[:-1])])
        if len(owner)
        else owner.astype(bool)
    )
    return owner[keep], hashes[keep]


def _per_key(keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per entry of ``keys``: how many entries with its key have ``mask`` set."""
    chosen, times = np.unique(keys[mask], return_counts=True)
    if not len(chosen):
        return np.zeros(len(keys), dtype=np.int64)
    at = np.minimum(np.searchsorted(chosen, keys), len(chosen) - 1)
    return np.where(chosen[at] == keys, times[at], 0)


def _window_keys(d_words: Shingles, doc: np.ndarray, offset: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Per pair: a hash of row ``doc[k]``'s words where a text of ``length[k]`` words sits at
    ``offset[k]`` (the diagonal its shared n-grams agree on). The same copy with a word replaced or
    two words swapped has one key in every row that quotes it; rows that only share a phrase of the
    text differ where the rest of the text would be."""
    lo = np.clip(offset, 0, d_words.counts()[doc])
    hi = np.clip(offset + length, lo, d_words.counts()[doc])
    base = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible modulo 2**64
    total = len(d_words.hashes)
    power = np.cumprod(np.full(total, base, dtype=np.uint64))  # base ** (i + 1), wrapping
    prefix = np.concatenate([np.zeros(1, np.uint64), np.cumsum(d_words.hashes * power, dtype=np.uint64)])
    inverse = np.cumprod(np.full(total + 1, np.uint64(pow(int(base), -1, 1 << 64)), dtype=np.uint64))
    inverse = np.concatenate([np.ones(1, np.uint64), inverse[:-1]])  # base ** -i
    a, b = d_words.offsets[doc] + lo, d_words.offsets[doc] + hi
    return (prefix[b] - prefix[a]) * inverse[a] + (hi - lo).astype(np.uint64)


def _longest_tokens(joined: np.ndarray, q_words: Shingles) -> np.ndarray:
    """Per text: the words of its longest whitespace-separated token (at least 1)."""
    token = np.cumsum(~joined) - 1  # the token of each word, numbered over all texts
    per_token = (
        np.bincount(token, minlength=int(token.max(initial=-1)) + 1) if len(token) else np.zeros(0, np.int64)
    )
    owner = np.repeat(np.arange(q_words.num_docs), q_words.counts())
    out = np.ones(q_words.num_docs, dtype=np.int64)
    if len(token):
        np.maximum.at(out, owner, per_token[token])
    return out


def _turn_edges(
    messages: list[list[dict[str, str]]], roles: list[str], views: np.ndarray, d_words: Shingles
) -> np.ndarray:
    """Sorted positions in ``d_words.hashes`` where a turn (of ``roles``) of one of ``views`` starts or ends."""
    turns = [[m["content"] for m in messages[v] if m["role"] in roles] for v in views.tolist()]
    flat = [t for ts in turns for t in ts]
    per_view = np.array([len(ts) for ts in turns], dtype=np.int64)
    counts = words(flat).counts() if flat else np.zeros(0, np.int64)
    owner = np.repeat(views, per_view)
    # Words before each turn's end within its text: a running sum restarted at each text.
    run = np.cumsum(counts)
    before = np.repeat(np.concatenate([[0], run])[np.cumsum(per_view) - per_view], per_view)
    return np.unique(np.concatenate([d_words.offsets[views], d_words.offsets[owner] + run - before]))


def _check_languages(
    spec: EvalSet, rows: list[dict[str, Any]], train: list[int], kept_sources: bool, ctx: StageContext
) -> int:
    """Rows with no text in the set's language (counted). A row read in that language that is
    now in another one without its original turns is an error: comparing it would compare
    languages, and miss every prose prompt."""
    other = 0
    lost: list[dict[str, Any]] = []
    for i in train:
        row = rows[i]
        if row["lang"] == spec.language or (
            row.get("source_messages") is not None and row.get("source_lang") == spec.language
        ):
            continue
        read_as = ctx.source_options.get(row["source"], {}).get("language")
        if not kept_sources and read_as == spec.language:
            lost.append(row)
        else:
            other += 1
    if lost:
        first = lost[0]
        raise RecipeError(
            f"stage {ctx.stage!r}: {len(lost)} rows read in {spec.language!r} are now in {first['lang']!r} "
            f"without their original turns (no 'source_messages'; first: {first['source']} "
            f"{first['source_key']}), so eval set {spec.name!r} ({spec.language}) cannot be compared "
            "in its language; put decontaminate before the stage that changed them"
        )
    return other


_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
# Sentences of one part traded two at a time up to this many sentences (6 orders at most).
_MAX_SENTENCES = 4


def _other_orders(parts: list[str]) -> list[str]:
    """A text's parts (instruction, input) in the other orders a copy may put them in: the parts
    reversed, and each two sentences of one part traded. Distinct, and none the text itself."""
    text = "\n".join(parts)
    out = ["\n".join(reversed(parts))] if len(parts) > 1 else []
    for k, part in enumerate(parts):
        sentences = _SENTENCE_END.split(part.strip())
        if not 2 <= len(sentences) <= _MAX_SENTENCES:
            continue
        for a, b in itertools.combinations(range(len(sentences)), 2):
            traded = list(sentences)
            traded[a], traded[b] = traded[b], traded[a]
            out.append("\n".join([*parts[:k], " ".join(traded), *parts[k + 1 :]]))
    return [t for t in dict.fromkeys(out) if t != text]


@functools.lru_cache(maxsize=4096)
def _grams_of(text: tuple[str, ...], n: int) -> list[str]:
    return list(dict.fromkeys(" ".join(text[i : i + n]) for i in range(max(1, len(text) - n + 1))))


def _copy_evidence(cfg: DecontaminateConfig, match: _Match, text: str, row: str) -> str:
    """What decided a copy: its edits, or the rows holding it; and the n-grams it shares with the
    row (both texts folded as they were compared)."""
    n = match.n
    words_of_text = text.split()
    grams = _grams_of(tuple(words_of_text), n)
    joined = f" {' '.join(row.split())} "
    first = list(itertools.islice((g for g in grams if f" {g} " in joined), 4))
    quoted = ", ".join(f'"{g}"' for g in first) + (
        f" (+{match.shared - len(first)} more)" if match.shared > len(first) else ""
    )
    allowed = 1 + int(np.floor(round((cfg.edit_rate or 0.0) * match.rare, 9)))
    if 0 <= match.edits <= allowed:
        why = (f"copy: {match.edits} edits in its {len(words_of_text)} words (at most {allowed}: 1 + {cfg.edit_rate:g} "
               f"per rare {n}-gram, {match.rare} held)")  # fmt: skip
    else:
        why = (f"copy: a text found in {match.copies} rows (holding {cfg.copy_containment:g} of its {n}-grams or "
               f"more; at least {cfg.min_copies} remove every row holding {_COPY_CANDIDATES:g})")  # fmt: skip
    return f"{why}; shared {n}-grams {match.shared} of {len(grams)}: {quoted}"


class Decontaminate(Stage):
    name = "decontaminate"
    Config = DecontaminateConfig

    def _copies(
        self,
        queries: Shingles,
        docs: Shingles,
        q_words: Shingles,
        d_words: Shingles,
        turns: list[list[dict[str, str]]],
        joined: np.ndarray,
        reordered: np.ndarray,
    ) -> tuple[np.ndarray, ...]:
        """``(doc, query, score, edits, copies, rare, shared)`` of every pair where the row holds a copy of the
        text: few enough edits (score: 1 - edits per word; edits -1 when not counted), or a text
        found in ``min_copies`` rows or more."""
        cfg: DecontaminateConfig = self.config
        assert cfg.edit_rate is not None and cfg.min_copies is not None and cfg.copy_containment is not None
        assert cfg.rare_rows is not None
        n = cfg.ngram
        distinct = distinct_counts(queries)
        found = shared_shingles(
            queries, docs, np.ceil(np.round(_COPY_CANDIDATES * distinct, 9)).astype(np.int64)
        )
        assert found.vocab is not None and found.doc_freq is not None
        doc, query, shared = found.doc, found.query, found.shared
        size = found.query_size
        # A text copied into many rows: its n-grams are common because of its copies, not because
        # it is common phrasing, and every one of those rows holds it.
        near = shared >= np.ceil(np.round(cfg.copy_containment * size[query], 9))
        crowd = np.bincount(query[near], minlength=queries.num_docs)
        copies = crowd[query]
        many = copies >= cfg.min_copies

        # The text's rare n-grams: held by at most rare_rows rows that are not its copies, where the
        # candidate rows holding the same words where the text would sit count once: the same lightly
        # edited copy in two rows (one prompt asked twice with different answers) is one copy, not
        # common phrasing. (Pairs of a text found in min_copies rows are decided already.)
        # Counting them can lower an n-gram's count by at most the text's candidates: only n-grams
        # that can end up rare are probed.
        q_owner, q_hash = _distinct_shingles(queries)
        freq = found.doc_freq[np.searchsorted(found.vocab, q_hash)]
        pairs_of = np.bincount(query, minlength=queries.num_docs)
        maybe = freq - pairs_of[q_owner] <= cfg.rare_rows
        candidates = Shingles(
            q_hash[maybe],
            np.concatenate([[0], np.cumsum(np.bincount(q_owner[maybe], minlength=queries.num_docs))]).astype(
                np.int64
            ),
        )
        open_pairs = np.flatnonzero(~many)
        anchor, held, held_hash = diagonals(candidates, docs, doc[open_pairs], query[open_pairs])
        length = q_words.counts()[query]
        window = np.zeros(len(doc), dtype=np.uint64)
        window[open_pairs] = _window_keys(d_words, doc[open_pairs], anchor, length[open_pairs])
        held_pair = open_pairs[held]
        vocab_id = np.searchsorted(found.vocab, held_hash)
        width = np.int64(len(found.vocab))
        keys = query[held_pair] * width + vocab_id
        in_copies = near[held_pair]
        rare_count = found.doc_freq[vocab_id] - _per_key(keys, in_copies)
        others = ~in_copies
        # Rows among the text's other candidates holding the n-gram, and their distinct windows.
        rare_count -= _per_key(keys, others)
        first = np.zeros(len(keys), dtype=bool)
        if len(keys):
            order = np.lexsort((window[held_pair], keys))
            k, w = keys[order], window[held_pair][order]
            new = np.concatenate([[True], (k[1:] != k[:-1]) | (w[1:] != w[:-1])])
            first[order] = new
        rare_count += _per_key(keys, others & first)
        rare = np.bincount(held_pair[rare_count <= cfg.rare_rows], minlength=len(doc))
        allowed = 1 + np.floor(np.round(cfg.edit_rate * rare, 9)).astype(np.int64)

        # An edit loses at most n + (words of the longest token - 1) of the text's n-grams: pairs that
        # lost more than their allowed edits can have are not aligned.
        longest = _longest_tokens(joined, q_words)
        reach = (n + longest - 1)[query]
        aligned = np.flatnonzero(~many & (shared >= size[query] - reach * allowed))
        edits = np.full(len(doc), -1, dtype=np.int64)
        if len(aligned):
            offset, _, _ = diagonals(queries, docs, doc[aligned], query[aligned])
            edges = _turn_edges(turns, cfg.fields, np.unique(doc[aligned]), d_words)
            slack = allowed[aligned] * longest[query[aligned]] + n
            edits[aligned] = edit_counts(
                q_words,
                d_words,
                query[aligned],
                doc[aligned],
                offset,
                slack,
                edges,
                joined,
                ~reordered[query[aligned]],
            )
        hit = many | ((edits >= 0) & (edits <= allowed))
        score = np.where(edits >= 0, 1.0 - edits / np.maximum(length, 1), shared / size[query])
        return doc[hit], query[hit], score[hit], edits[hit], copies[hit], rare[hit], shared[hit]

    def _copies_of(
        self,
        texts: np.ndarray,
        n: int,
        q_words: Shingles,
        docs: Shingles,
        doc_words: Shingles,
        turns: list[list[dict[str, str]]],
        joined: Shingles,
        items: int,
    ) -> tuple[np.ndarray, ...]:
        """:meth:`_copies` for texts ``texts`` (of ``q_words``, the first ``items`` of them the
        texts as they are), as ``(view, text, score, n, edits, copies, rare, shared)``."""
        if not len(texts):
            none = np.zeros(0, np.int64)
            return none, none, none.astype(np.float64), none, none, none, none, none
        chosen = q_words.take(texts)
        view, query, score, *evidence = self._copies(
            ngrams(chosen, n),
            docs,
            chosen,
            doc_words,
            turns,
            joined.take(texts).hashes.astype(bool),
            texts >= items,
        )
        return (view, texts[query], score, np.full(len(view), n), *evidence)

    def _score(self, queries: Shingles, docs: Shingles) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(doc, query, score)`` of every pair that matches, all computed exactly."""
        cfg: DecontaminateConfig = self.config
        distinct = distinct_counts(queries)
        if cfg.method == "ngram":
            assert cfg.min_overlap is not None
            need = np.minimum(cfg.min_overlap, distinct)  # a short text matches when all of it is found
        else:
            assert cfg.threshold is not None
            # Containment t needs t * m shared n-grams; so does Jaccard t, whose union is at least m.
            # (Rounded: 0.7 * 10 is not 7 in floats.)
            need = np.ceil(np.round(cfg.threshold * distinct, 9)).astype(np.int64)
        found = shared_shingles(queries, docs, need)
        if cfg.method == "ngram":
            return found.doc, found.query, found.shared.astype(np.float64)
        if cfg.method == "containment":
            return found.doc, found.query, found.shared / found.query_size[found.query]
        # Jaccard: the distinct n-grams of the candidate rows only, counted once each.
        rows = np.unique(found.doc)
        row_size = np.zeros(docs.num_docs, dtype=np.int64)
        row_size[rows] = distinct_counts(docs.take(rows))
        union = found.query_size[found.query] + row_size[found.doc] - found.shared
        score = found.shared / union
        hit = score >= cfg.threshold
        return found.doc[hit], found.query[hit], score[hit]

    def _matches(
        self,
        sets: list[EvalTexts],
        doc_words: Shingles,
        owner: np.ndarray,
        turns: list[list[dict[str, str]]],
        ctx: StageContext,
    ) -> list[dict[int, _Match]]:
        """For each set, the best match of every training row that matches any of its texts: the
        highest score, and on a tie the earliest item (so a report does not depend on order)."""
        cfg: DecontaminateConfig = self.config
        plans: list[tuple[Shingles, np.ndarray]] = []
        joined: list[Shingles] = []
        for evals in sets:
            if cfg.method == "copy":
                _reorder(evals)
            else:
                evals.orders, evals.origin = evals.texts, list(range(len(evals.texts)))
            q_words = words(evals.orders)
            if cfg.method == "copy":
                flags = _token_continuations(evals.orders, q_words).astype(np.uint64)
                joined.append(Shingles(flags, q_words.offsets))
            size = np.minimum(q_words.counts(), cfg.ngram)
            short = q_words.counts() < cfg.min_eval_words
            size[short] = 0
            items = len(evals.texts)  # the texts as they are come first
            ctx.stats.counters[f"eval_texts:{evals.name}"] = int((~short[:items]).sum())
            ctx.stats.counters[f"skipped_short:{evals.name}"] = int(short[:items].sum())
            plans.append((q_words, size))
        found: list[list[tuple[np.ndarray, ...]]] = [[] for _ in sets]
        for n in sorted({int(s) for _, size in plans for s in size if s > 0}, reverse=True):
            # One n-gram size at a time: the rows' n-grams of each size are made once, for all sets.
            docs = ngrams(doc_words, n)
            for k, (hits, (q_words, size)) in enumerate(zip(found, plans, strict=True)):
                texts = np.flatnonzero(size == n)
                if not len(texts):
                    continue
                if cfg.method == "copy":
                    items = len(sets[k].texts)
                    as_is = texts[texts < items]
                    found_as_is = self._copies_of(as_is, n, q_words, docs, doc_words, turns, joined[k], items)
                    hits.append(found_as_is)
                    # A text found in min_copies rows is removed from every row holding 0.6 of it,
                    # which a copy in another order does: its other orders need no comparing.
                    crowded = np.unique(found_as_is[1][found_as_is[5] >= cfg.min_copies])
                    origin = np.asarray(sets[k].origin, dtype=np.int64)
                    others = texts[(texts >= items) & ~np.isin(origin[texts], crowded)]
                    hits.append(self._copies_of(others, n, q_words, docs, doc_words, turns, joined[k], items))
                    continue
                view, query, score = self._score(ngrams(q_words.take(texts), n), docs)
                none = np.zeros(len(view), np.int64)
                evidence = [none - 1, none, none, none]
                hits.append((view, texts[query], score, np.full(len(view), n), *evidence))
        best: list[dict[int, _Match]] = []
        for hits in found:
            if not hits:
                best.append({})
                continue
            view, text, score, size, edits, copies, rare, shared = (
                np.concatenate(a) for a in zip(*hits, strict=True)
            )
            row = owner[view]
            order = np.lexsort((text, -score, row))
            first = np.ones(len(order), dtype=bool)
            first[1:] = row[order][1:] != row[order][:-1]
            best.append(
                {
                    int(row[i]): _Match(
                        float(score[i]),
                        int(text[i]),
                        int(view[i]),
                        int(size[i]),
                        int(edits[i]),
                        int(copies[i]),
                        int(rare[i]),
                        int(shared[i]),
                    )
                    for i in order[first]
                }
            )
        return best

    def _describe(
        self,
        evals: EvalTexts,
        match: _Match,
        original: bool,
        lang: str | None,
        folded: dict[str, str],
        view: str,
    ) -> str:
        cfg: DecontaminateConfig = self.config
        if cfg.method == "copy":
            how = _copy_evidence(cfg, match, folded[evals.orders[match.text]], folded[view])
            if match.text >= len(evals.texts):
                how += " (its parts or sentences in another order)"
        elif cfg.method == "ngram":
            how = f"ngram: {match.score:g} shared {match.n}-grams"
        elif cfg.method == "containment":
            how = f"containment {match.score:.3f} of its {match.n}-grams"
        else:
            how = f"minhash: Jaccard {match.score:.3f} on {match.n}-grams"
        text = "original" if original else "translation"
        return f"eval set {evals.name!r} item {evals.item[evals.origin[match.text]]}: {how}, in the row's {text} ({lang})"

    def run(self, batches: Iterator[pa.Table], ctx: StageContext) -> Iterator[pa.Table]:
        cfg: DecontaminateConfig = self.config
        table = gather(batches)
        if table is None:
            return
        kept_sources = "source_messages" in table.schema.names
        columns = ["row_id", "source", "source_key", "lang", "messages"]
        columns += [c for c in ("source_messages", "source_lang") if c in table.schema.names]
        if cfg.test_split and "split" not in table.schema.names:
            # Without this, a decontaminate placed before split would compare with an empty test
            # split and remove nothing, silently.
            raise UserError(
                "decontaminate: test_split = true needs a split stage before it; move it after "
                "`split`, or set test_split = false"
            )
        rows = table.select(columns).to_pylist()
        splits = table.column("split").to_pylist() if "split" in table.schema.names else ["train"] * len(rows)
        train = [i for i, s in enumerate(splits) if s == "train"]
        texts, owner, original, lang = _views(rows, train, cfg.fields)
        ctx.stats.counters.update(cfg.settings())
        ctx.stats.counters["fields"] = list(cfg.fields)
        ctx.stats.counters["rows_compared"] = len(train)
        ctx.stats.counters["originals_compared"] = len(texts) - len(train)

        sets: list[EvalTexts] = []
        if cfg.test_split:
            test = EvalTexts("test_split")
            for i, s in enumerate(splits):
                if s != "test":
                    continue
                for turns in (rows[i]["messages"], rows[i].get("source_messages")):
                    if turns is not None:
                        test.texts.append(row_text(turns, cfg.test_fields))
                        test.parts.append([test.texts[-1]])
                        test.item.append(f"row {rows[i]['row_id']}")
            sets.append(test)
        info: dict[str, Any] = {}
        for spec in cfg.eval_sets:
            other = _check_languages(spec, rows, train, kept_sources, ctx)
            evals = read_eval_set(spec, ctx.base_dir)
            evals.info["items"] = len(evals.texts)
            evals.info["other_language_rows"] = other
            ctx.stats.counters[f"other_language:{evals.name}"] = evals.info["other_language_rows"]
            if "commit" in evals.info:
                ctx.stats.counters[f"commit:{evals.name}"] = evals.info["commit"]
            info[evals.name] = evals.info
            sets.append(evals)
        ctx.stats.counters["eval_sets"] = info

        turns = _view_messages(rows, train) if cfg.method == "copy" else []
        best = self._matches(sets, words(texts), np.asarray(owner, dtype=np.int64), turns, ctx)
        # The words of each text a removal names, folded as they were compared (for its detail).
        named = (
            sorted(
                {
                    evals.orders[m.text]
                    for evals, per_row in zip(sets, best, strict=True)
                    for m in per_row.values()
                }
                | {texts[m.view] for per_row in best for m in per_row.values()}
            )
            if cfg.method == "copy"
            else []
        )
        folded = dict(zip(named, fold_text(named).to_pylist(), strict=True)) if named else {}
        removed: dict[int, str] = {}
        for evals, per_row in zip(sets, best, strict=True):
            n = 0
            for k, match in sorted(per_row.items()):
                if train[k] not in removed:
                    removed[train[k]] = self._describe(
                        evals, match, original[match.view], lang[match.view], folded, texts[match.view]
                    )
                    n += 1
            ctx.stats.counters[f"contaminated:{evals.name}"] = n
        if not removed:
            yield table
            return
        order = sorted(removed)
        ctx.reject([rows[i] for i in order], "contaminated", [removed[i] for i in order])
        keep = np.ones(len(rows), dtype=bool)
        keep[order] = False
        yield table.filter(pa.array(keep))
