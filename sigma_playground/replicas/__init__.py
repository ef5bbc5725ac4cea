"""Read replicas, without surprising anyone (issue 20, section 1; docs/scaling.md, "Read replicas").

``DATABASE_REPLICA_URLS`` adds PostgreSQL streaming replicas as the aliases ``replica_0``, ``replica_1``...
(settings.py; same engine, pool, timeouts and per-alias circuit breaker as the primary). Off by default:
without replicas neither the router nor the middleware is installed and nothing changes.

What reads a replica: the reads of a *public page* — a GET or HEAD of a view decorated with
``@cache_anonymous_page`` (home, lists, search, tag pages, profiles, followers, workbook detail, feeds,
sitemaps, oEmbed), whether the visitor is anonymous or logged in — made outside a transaction. Everything
else reads the primary: writes, anything in ``atomic()`` (and so ``select_for_update``), POSTs, admin and
every other page, staff users everywhere, sessions and log-in throttling, Celery tasks and commands, and a
client who wrote within ``REPLICA_PIN_SECONDS``. The middleware marks a public page's reads
(``middleware.ReplicaRoutingMiddleware``) and the router (``router.ReplicaRouter``) sends them on.

Which replica: one that this process measured (``monitor``, a background thread per process, every
``REPLICA_CHECK_SECONDS``) to be a standby, reachable, and no more than ``REPLICA_MAX_LAG_SECONDS`` behind
the primary, with its breaker closed and a connection to be had within ``REPLICA_CONNECT_WAIT_SECONDS``.
With none, reads go to the primary. A stopped replica costs the request that first finds it gone one failed
connection attempt (refused at once; a silent host ``DB_CONNECT_TIMEOUT`` at most, and the request waits no
longer than ``REPLICA_CONNECT_WAIT_SECONDS`` for it) before it reads from the primary; its breaker then keeps
everyone else off it until the monitor's probe finds it back.

Read-your-writes: a request that wrote (any statement on the primary other than a read, whatever its method;
a failed form or a beacon writes nothing and pins nothing) and succeeded gets a signed cookie; for
``REPLICA_PIN_SECONDS`` that client's reads all go to the primary. The window is at least the lag bound plus a
second, so when it ends, any replica still in use has the write.

The caches, and why a rebuild after a write reads the primary. Pages and fragments are stored under the
generations of the namespaces they show; a write bumps them after its commit, and the next request rebuilds
the page. Built from a replica that had not replayed the write yet, the rebuilt page would hold the old data
*under the new generation*: current as far as the cache can tell, served to everyone until it expires
(``PAGE_CACHE_TTL``), and copied by the CDN (which re-fetches right after the write's purge) for up to a day.
The author's pin does not help: the rebuild may be anyone's request. So every bump also records *when* it
happened (``caching.service.bump``, the durable Redis: a time per namespace, kept an hour), and a public page
reads a replica only if that replica is known to have replayed everything committed before the newest bump
of the namespaces the page shows (and a fragment or cached result built inside it, of its own namespaces).
"Known to have replayed up to V" comes from the monitor: V is the moment it asked the primary for its WAL
insert position if the replica has since replayed past it, else the commit time of the last transaction the
replica replayed, never going back. The bump is stamped after its commit, so bump time <= V means the
replica has the write (``CLOCK_MARGIN_SECONDS`` allows for the hosts' clocks). Right after a write, pages
that show it are therefore built from the primary for about ``REPLICA_CHECK_SECONDS`` plus the replica's lag;
every other page keeps reading replicas. When the change times cannot be read (Redis down), the primary
answers. This also keeps a replica from showing a workbook that was just made private: the write bumped the
namespaces of every page that listed it.
"""
