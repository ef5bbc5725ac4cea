"""Full-text search over workbooks.

On PostgreSQL: the stored generated ``search_vector`` column (migration 0002) with its GIN index. The
query is what people type, parsed by ``websearch_to_tsquery`` (``"quoted phrases"``, ``or``, ``-word``).

The last word also matches as a prefix, so ``reven`` finds "revenue" while someone is still typing. A
tsquery prefix (``'reven':*``) would do it, but the planner cannot estimate one: it guesses a flat ~2% of
rows, and for a rare prefix then walks the whole newest-first index looking for matches (seconds at a
million rows). So the prefix is expanded instead, through ``SearchLexeme`` (every distinct word of the
column, refreshed daily and on each publish, by the services), into the ``PREFIX_EXPANSION`` most common
real words it starts: ``'reven'`` becomes ``'revenu' | 'revenant'``, exact GIN lookups the planner estimates from its
statistics.

Relevance (``ts_rank_cd``) is computed only over a bounded candidate set, the ``SEARCH_CANDIDATES``
newest matches, so a word that matches half the table costs a bounded index walk, not a rank computation
over every match.

On the embedded SQLite default: every plain word must appear in the title, the description or the tag
names (``icontains``); no ranking, no stemming. Enough for ``make run``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, FloatField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from sigma_playground.caching.local import LocalLRUCache
from workbooks.models import Workbook

# Relevance is ranked among this many newest matches. 2,000 made a word on 5% of a million rows walk
# 40,000 index entries (160 ms in bench-db); 200 keeps it near 15 ms and is still ten pages of results.
SEARCH_CANDIDATES = 200
MAX_QUERY_LENGTH = 200
PREFIX_EXPANSION = 8
_PLAIN_WORD = re.compile(r"^[^\W_]{2,40}$")  # letters/digits of any script
# Unqualified on purpose: inside a subquery Django aliases the table (U0), and a qualified name would
# silently refer to the outer query's row instead. No other table in these queries has the column.
_VECTOR = "search_vector"
_LEXEME_TABLE = "workbooks_searchlexeme"


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


@dataclass(frozen=True)
class TsQuery:
    """A tsquery as SQL with bound parameters (the user's text never becomes SQL)."""

    sql: str
    params: list[str]


# Expansions are tiny and asked for again and again while people type: kept per process for a minute.
PREFIX_CACHE = LocalLRUCache("search_prefix", max_entries=2048, ttl=60)


def expand_prefix(word: str) -> list[str]:
    """The most common indexed words starting with ``word`` (lower-cased)."""
    prefix = word.lower().replace("\\", "").replace("%", "").replace("_", "")
    if len(prefix) < 2:
        return []
    return PREFIX_CACHE.get_or_set(prefix, lambda: _lookup_prefix(prefix))


def _lookup_prefix(prefix: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT word FROM {_LEXEME_TABLE} WHERE word LIKE %s ORDER BY documents DESC, word LIMIT %s",  # noqa: S608
            [prefix + "%", PREFIX_EXPANSION],
        )
        return [row[0] for row in cursor.fetchall()]


def build_tsquery(query: str) -> TsQuery:
    """The tsquery for what someone typed: websearch syntax, the last plain word also as a prefix."""
    head, _, last = query.rstrip().rpartition(" ")
    after_or = head.rstrip().lower().endswith(" or") or head.strip().lower() == "or"
    expandable = (
        _PLAIN_WORD.match(last) and query.count('"') % 2 == 0 and last.lower() != "or" and not after_or
    )
    words = expand_prefix(last) if expandable else []
    if not words:
        return TsQuery("websearch_to_tsquery('english', %s)", [query])
    alternatives = " | ".join("'" + w.replace("'", "''") + "'" for w in words)
    last_term = "(websearch_to_tsquery('english', %s) || to_tsquery('simple', %s))"
    if head.strip():
        # && adds the last word (or any word it starts) as one more AND-ed term. A side made only of
        # stop words is empty, and PostgreSQL drops it, so "the reven" still finds "revenue".
        return TsQuery(f"(websearch_to_tsquery('english', %s) && {last_term})", [head, last, alternatives])
    return TsQuery(last_term, [last, alternatives])


def matches(qs: QuerySet, query: str, *, tsquery: TsQuery | None = None) -> QuerySet:
    """Filter ``qs`` (of Workbook) to rows matching ``query``."""
    if is_postgres():
        tsq = tsquery or build_tsquery(query)
        return qs.filter(RawSQL(f"{_VECTOR} @@ {tsq.sql}", tsq.params, output_field=BooleanField()))
    for word in query.split()[:10]:
        word = word.strip("\"'")
        if word and not word.startswith("-") and word.lower() != "or":
            qs = qs.filter(
                Q(title__icontains=word) | Q(description__icontains=word) | Q(tag_names__icontains=word)
            )
    return qs


def ranked(qs: QuerySet, query: str) -> QuerySet:
    """Matches of ``query`` among the ``SEARCH_CANDIDATES`` newest, annotated with ``search_rank``."""
    if not is_postgres():
        return matches(qs, query).annotate(search_rank=RawSQL("0.0", [], output_field=FloatField()))
    tsq = build_tsquery(query)
    candidates = (
        matches(qs, query, tsquery=tsq).order_by("-published_at", "-id").values("pk")[:SEARCH_CANDIDATES]
    )
    return qs.model.objects.filter(pk__in=candidates).annotate(
        search_rank=RawSQL(f"ts_rank_cd({_VECTOR}, {tsq.sql}, 32)", tsq.params, output_field=FloatField())
    )


# --- Highlighting -----------------------------------------------------------------------------------------

# ts_headline marks matches with these (private-use characters), and the text is HTML-escaped before they
# become <mark>: the stored text never reaches the page unescaped.
_START, _STOP = "\ue000", "\ue001"
SNIPPET_WORDS = (12, 30)  # MinWords, MaxWords of the description snippet


def _marked(text: str) -> SafeString:
    html = escape(text)
    if html.count(_START) != html.count(_STOP):  # the text itself held a marker: show it plain
        return escape(text.replace(_START, "").replace(_STOP, ""))
    return mark_safe(html.replace(_START, "<mark>").replace(_STOP, "</mark>"))  # noqa: S308 (escaped above)


def _python_marks(text: str, query: str) -> str:
    words = [w.strip("\"'") for w in query.split()[:10]]
    words = [w for w in words if w and not w.startswith("-") and w.lower() != "or"]
    if not words:
        return text
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.IGNORECASE)
    return pattern.sub(lambda m: f"{_START}{m.group(0)}{_STOP}", text.replace(_START, "").replace(_STOP, ""))


def _python_snippet(text: str, query: str, max_chars: int = 220) -> str:
    marked = _python_marks(text, query)
    first = marked.find(_START)
    start = max(0, first - 60) if first > 0 else 0
    snippet = marked[start : start + max_chars]
    if snippet.count(_START) > snippet.count(_STOP):
        snippet += _STOP
    return ("…" if start else "") + snippet + ("…" if start + max_chars < len(marked) else "")


def attach_headlines(workbooks: Sequence, query: str) -> None:
    """Set ``headline_title`` and ``headline_snippet`` (safe HTML with ``<mark>``) on a page's workbooks.

    One query for the page's rows only (``ts_headline`` parses the text it marks, so it must never run over
    the whole match set). On SQLite the query's plain words are marked case-insensitively in Python.
    """
    ids = [w.pk for w in workbooks]
    if not ids or not query:
        return
    if is_postgres():
        tsq = build_tsquery(query)
        options = f'StartSel="{_START}", StopSel="{_STOP}"'
        snippet = f"{options}, MinWords={SNIPPET_WORDS[0]}, MaxWords={SNIPPET_WORDS[1]}, MaxFragments=1"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT w.id, ts_headline('english', w.title, q.q, %s), "  # noqa: S608 (tsq.sql is ours)
                "ts_headline('english', w.description, q.q, %s), w.description <> '' "
                f"FROM workbooks_workbook w, (SELECT {tsq.sql} AS q) q WHERE w.id = ANY(%s)",
                [f"HighlightAll=true, {options}", snippet, *tsq.params, ids],
            )
            found = {pk: (title, desc if has_desc else "") for pk, title, desc, has_desc in cursor.fetchall()}
    else:
        rows = Workbook.objects.filter(pk__in=ids).values_list("pk", "title", "description")
        found = {pk: (_python_marks(title, query), _python_snippet(desc, query)) for pk, title, desc in rows}
    for workbook in workbooks:
        title, desc = found.get(workbook.pk, (None, ""))
        workbook.headline_title = _marked(title) if title is not None else None
        workbook.headline_snippet = _marked(desc) if desc else ""
