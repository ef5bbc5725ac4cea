# Varnish 7 (Debian: varnish, varnish-modules) as the CDN tier in front of nginx: it stands in for Fastly or
# Cloudflare and behaves as they are configured to (docs/edge.md).
#
# A template: deploy/edge.py fills the placeholders (a NAME between double at-signs: the origin's address, the addresses allowed
# to purge, the session cookie names) and `make stack` / the tests write the result into their run folder.
#
# - Caches anonymous GET/HEAD responses the site marks public (Cache-Control: public with s-maxage, or
#   Surrogate-Control), for as long as they say; never answers or stores anything for a request with a
#   session or messages cookie (those pass to the origin); other cookies are dropped, they change nothing.
# - Strips tracking query parameters (utm_*, gclid, fbclid, ...) before the lookup, so they share one copy.
# - Purges by surrogate key (the origin's Surrogate-Key header, indexed by the xkey vmod): PURGE with an
#   xkey-purge header; or by URL: PURGE <path>. Only from the purgers ACL.
# - Answers X-Cache: HIT|MISS and Age; strips the surrogate headers before the response leaves.
# - Keeps objects past their lifetime for conditional revalidation (If-None-Match to the origin, a 304 back)
#   and answers a browser's If-None-Match with a 304 itself.
vcl 4.1;

import std;
import xkey;

backend origin {
    .host = "@@ORIGIN_HOST@@";
    .port = "@@ORIGIN_PORT@@";
    .connect_timeout = 2s;
    .first_byte_timeout = 35s;   # gunicorn's timeout is 30 s
    .between_bytes_timeout = 10s;
}

acl purgers {
@@PURGERS@@
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
            return (synth(200, "Purged " + req.http.n-gone + " objects"));
        }
        return (purge);
    }

    # This tier is the edge: the client address is the peer's, whatever the client claims (nginx trusts
    # X-Forwarded-For from this tier only).
    set req.http.X-Forwarded-For = client.ip;

    # Tracking parameters never change a page: remove them, then any "?" or "&" left dangling.
    if (req.url ~ "[?&](utm_[a-z]+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|_gl)=") {
        set req.url = regsuball(req.url, "(?<=[?&])(utm_[a-z]+|gclid|fbclid|msclkid|mc_cid|mc_eid|_ga|_gl)=[^&]*(&|$)", "");
        set req.url = regsub(req.url, "[?&]+$", "");
    }

    if (req.method != "GET" && req.method != "HEAD") {
        return (pass);
    }
    if (req.http.Authorization) {
        return (pass);
    }
    # A session (or a pending message) makes the page personal: straight to the origin, nothing stored.
    if (req.http.Cookie ~ "(^|;\s*)(@@SESSION_COOKIES@@)=") {
        return (pass);
    }
    # Any other cookie (csrftoken, analytics) changes nothing for an anonymous page: one shared copy.
    unset req.http.Cookie;

    # Brotli where the client takes it, else gzip, else identity: the origin's Vary: Accept-Encoding then
    # keeps one copy of each under the same hash (so a purge by URL takes them all), compressed by nginx.
    # (Varnish's own gzip handling, off, would ask the origin for gzip only.)
    if (req.http.Accept-Encoding ~ "\bbr\b") {
        set req.http.Accept-Encoding = "br";
    } elsif (req.http.Accept-Encoding ~ "\bgzip\b") {
        set req.http.Accept-Encoding = "gzip";
    } else {
        unset req.http.Accept-Encoding;
    }
    return (hash);
}

sub vcl_backend_response {
    # nginx adds its own "Vary: Accept-Encoding" line next to the site's "Vary: Cookie": Varnish only reads
    # the first, so make them one.
    std.collect(beresp.http.Vary);
    if (bereq.uncacheable) {
        return (deliver);
    }
    # Only what the site marks public, with a shared lifetime, and without a cookie being set.
    if (beresp.http.Set-Cookie
        || beresp.http.Cache-Control !~ "(?i)\bpublic\b"
        || beresp.http.Cache-Control ~ "(?i)\b(private|no-store)\b"
        || beresp.http.Vary == "*") {
        set beresp.ttl = 120s;
        set beresp.uncacheable = true;   # hit-for-miss: later requests go straight to the origin
        return (deliver);
    }
    # Surrogate-Control (Fastly's header) wins over s-maxage, as it does at Fastly.
    if (beresp.http.Surrogate-Control ~ "max-age=\d+") {
        set beresp.ttl = std.duration(regsub(beresp.http.Surrogate-Control, ".*max-age=(\d+).*", "\1") + "s", 0s);
    }
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # A purge removes objects outright; grace only covers a lifetime running out. Pages with no shared
    # lifetime (ttl 0) are kept for conditional revalidation only, never served without asking the origin.
    if (beresp.ttl > 0s) {
        set beresp.grace = 10s;
    } else {
        set beresp.grace = 0s;
    }
    set beresp.keep = 1d;
    return (deliver);
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    # Operators (`manage.py cdn status`) may see the keys; nobody else.
    if (req.http.X-Cache-Debug && client.ip ~ purgers) {
        set resp.http.X-Cache-Keys = resp.http.xkey;
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.Surrogate-Control;
    unset resp.http.Cache-Tag;
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}

sub vcl_synth {
    set resp.http.X-Cache = "SYNTH";
    set resp.http.Content-Type = "text/plain; charset=utf-8";
    synthetic(resp.reason + {"
"});
    return (deliver);
}
