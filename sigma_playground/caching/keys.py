"""Every cache key the site uses, built here and nowhere else.

Keys are ``sp:<KEY_VERSION>:<kind>:…``. Changing the shape of a cached value means bumping KEY_VERSION:
old entries are then simply never read again and expire.

Groups of pages are invalidated with generation counters instead of by listing or scanning their keys
(the design document's ``KEYS pattern`` + ``DEL`` blocks Redis for the length of a scan on every write):
an entry is tied to the generation of each namespace it depends on when it was built, and invalidating the
namespace is one ``INCR``. Fragments and function results embed the generations in their key; whole pages
keep them in the stored value instead, so that a cache hit reads the generations and the page in a single
``MGET`` (caching.pages), and an entry whose generations are behind counts as missing. Namespaces:

- ``lists``: every page that lists workbooks or shows authors on cards (home, /workbooks/ in any
  sort/filter/search/page, tag pages, related workbooks on detail pages, profiles' workbook grids).
- ``workbook:<id>``: one workbook's detail page.
- ``user:<lower-cased username>``: one person's profile, followers and following pages (by name, so an
  anonymous cache hit needs no database lookup to find the user id).
- ``people``: the people directory (/users/) and the "People" block of search pages (follower counts,
  names, who exists). The tag directory (/tags/) and feeds and sitemaps of workbooks depend on ``lists``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

KEY_VERSION = 2
PREFIX = f"sp:{KEY_VERSION}"

# Kinds of cached things: the bounded label set of the cache metrics.
KIND_PAGE = "page"
KIND_FRAGMENT = "fragment"
KIND_GENERATION = "generation"
KIND_FUNCTION = "function"
KIND_LOCK = "lock"
KINDS = (KIND_PAGE, KIND_FRAGMENT, KIND_GENERATION, KIND_FUNCTION, KIND_LOCK)

LISTS = "lists"
PEOPLE = "people"
# The tag directory (every tag on a listed workbook, with counts): bumped with ``lists`` by every write except
# a new workbook, which can only add to it (caching/invalidate.py). No page carries it as a surrogate key.
TAG_DIRECTORY = "tag-directory"


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def ns_workbook(workbook_id: int) -> str:
    return f"workbook:{int(workbook_id)}"


def ns_user(username: str) -> str:
    return f"user:{username.lower()}"


def surrogate_key(namespace: str) -> str:
    """The CDN's surrogate key for a namespace (``Surrogate-Key`` / ``xkey`` / ``Cache-Tag``): ``lists``,
    ``wb-<id>``, ``user-<name>``. Pages carry the keys of the namespaces they show, and a write purges the
    keys of the namespaces it bumps, so the CDN and Redis are invalidated by the same rule."""
    kind, _, rest = namespace.partition(":")
    if kind == "workbook":
        return f"wb-{rest}"
    if kind == "user":
        return f"user-{rest}"
    return namespace


def surrogate_keys(namespaces: Iterable[str]) -> list[str]:
    return sorted({surrogate_key(ns) for ns in namespaces})


def cdn_pending() -> str:
    """Sorted set of surrogate keys a purge is owed for, scored by the latest commit that owes it
    (sigma_playground.cdn.purge)."""
    return f"{PREFIX}:cdn:pending"


def cdn_inflight() -> str:
    """Sorted set of keys a purge task has claimed and is sending, scored by the claim time."""
    return f"{PREFIX}:cdn:inflight"


def cdn_scheduled() -> str:
    """Set while a purge task is scheduled: writes meanwhile only add their keys (coalescing)."""
    return f"{PREFIX}:cdn:scheduled"


def generation(namespace: str) -> str:
    return f"{PREFIX}:gen:{namespace}"


def changed(namespace: str) -> str:
    """When the namespace was last bumped (time.time(), kept CHANGED_SECONDS), beside its generation: a page
    may be built from a read replica only if the replica has everything up to then (sigma_playground.replicas)."""
    return f"{PREFIX}:changed:{namespace}"


def changed_of_generation(generation_key: str) -> str:
    """The change-time key beside a generation key (``generation(ns)`` -> ``changed(ns)``)."""
    return changed(generation_key.removeprefix(f"{PREFIX}:gen:"))


def _with_generations(generations: dict[str, int]) -> str:
    return ",".join(f"{ns}={generations[ns]}" for ns in sorted(generations))


def page(view: str, full_path: str, *, secure: bool) -> str:
    """A whole anonymous page: the view's name, the scheme (security headers differ) and the full path with
    its query string. The generations it was built under are stored in the value (see caching.pages)."""
    scheme = "https" if secure else "http"
    return f"{PREFIX}:page:{view}:{_digest(scheme + ':' + full_path)}"


def fragment(name: str, variant: str, generations: dict[str, int]) -> str:
    """The shared (non-personal) part of a page, for logged-in readers."""
    return f"{PREFIX}:frag:{name}:{_digest(variant + '|' + _with_generations(generations))}"


def function(name: str, args_key: str) -> str:
    """A function result cached by sigma_playground.caching.service.cached."""
    return f"{PREFIX}:fn:{name}:{_digest(args_key)}"


def lock(key: str) -> str:
    """The short rebuild lock of a key (stampede control)."""
    return f"{key}:lock"


def local(name: str, args_key: str = "") -> str:
    """A key in the in-process LRU (sigma_playground.caching.local)."""
    return f"{name}:{args_key}"


# --- View counters (workbooks.counters) --------------------------------------------------------------------


def views_buffer(day_iso: str) -> str:
    """Hash of workbook id -> views not yet written to the database, for one UTC day."""
    return f"{PREFIX}:views:{day_iso}"


def views_claimed(day_iso: str, batch_id: str) -> str:
    """A buffer renamed away by a flush: the batch it is writing."""
    return f"{PREFIX}:views:{day_iso}:batch:{batch_id}"


def views_sent(batch_id: str) -> str:
    """Marker of a process batch delivered to the buffers (makes a resent batch a no-op)."""
    return f"{PREFIX}:views:sent:{batch_id}"


def views_days() -> str:
    """Set of days with a live buffer (so a flush never needs KEYS or SCAN)."""
    return f"{PREFIX}:views:days"


def views_seen(window: int, workbook_id: int) -> str:
    """Set of visitors (digests) already counted for one workbook in one VIEW_DEDUP_SECONDS window; expires
    with the window, so memory is bounded by the distinct visitors of a window."""
    return f"{PREFIX}:views:seen:{int(window)}:{int(workbook_id)}"


def views_batches() -> str:
    """Set of claimed batches not yet finished (a flush that died leaves its batch here)."""
    return f"{PREFIX}:views:batches"


# --- Embed link checker (workbooks.linkcheck) ---------------------------------------------------------------


def linkcheck_cursor() -> str:
    """The last workbook id the checker's discovery walked past."""
    return f"{PREFIX}:linkcheck:cursor"


def linkcheck_lock() -> str:
    """Held while a checker run is in progress, so two beats never check the same batch."""
    return f"{PREFIX}:linkcheck:lock"


def beat_lock() -> str:
    """The single-beat lock (sigma_playground.beat), in the durable Redis."""
    return f"{PREFIX}:beat:lock"


def beat_heartbeat() -> str:
    """When a worker last ran the beat heartbeat task (monitoring.tasks; read by the health diagnosis)."""
    return "monitoring:beat-heartbeat"


# --- Rate limits (sigma_playground.ratelimit) ---------------------------------------------------------------


def rate_limit(action: str, subject: str, window: int) -> str:
    """The counter of ``action`` by ``subject`` (a client address or a user id) in one fixed window."""
    return f"{PREFIX}:rate:{action}:{_digest(subject)}:{window}"
