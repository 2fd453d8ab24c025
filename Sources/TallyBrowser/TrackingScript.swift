/// The tracking script served at `GET /tally.js`. One tag on a page is enough:
///
///     <script defer src="https://collector.example/tally.js" data-site="my-site"></script>
///
/// It sends a `page_view` on load and on every SPA navigation (`pushState`, `replaceState`,
/// `popstate`; not twice in a row for the same path) with the path (the query only with
/// `data-include-query`), the referrer on the first view and the page's UTM parameters, and
/// defines `window.tally(eventType, {path})` for custom events (calls queued before it loaded,
/// by the snippet `window.tally = window.tally || function () { (tally.q = tally.q || []).push(arguments) }`,
/// are sent once it has). `data-api` names the collector when it is not the script's origin.
///
/// Transport: `navigator.sendBeacon` with a `text/plain` JSON body (no CORS preflight, and it
/// survives the page unloading), else `fetch(…, {keepalive: true})`. It never throws into the
/// page, and sends nothing from `localhost`, `127.0.0.1`, `[::1]` or `file:` pages unless the
/// tag has `data-allow-local`. Kept readable rather than minified: gzipped it is under 1 KiB
/// (a test holds it to that).
enum TrackingScript {
    static let source = #"""
        (function (w, d) {
          var noop = function () {};
          try {
            var s = d.currentScript, l = w.location;
            if (!s) { w.tally = w.tally || noop; return; }
            var attr = function (n) { return s.getAttribute(n); };
            var site = attr("data-site");
            var api = (attr("data-api") || new URL(s.src, l.href).origin).replace(/\/+$/, "") + "/event";
            var local = /^(localhost|127\.0\.0\.1|\[::1\])$/.test(l.hostname) || l.protocol === "file:";
            var queued = (w.tally && w.tally.q) || [];
            if (!site || (local && !s.hasAttribute("data-allow-local"))) { w.tally = noop; return; }
            var path = function () { return l.pathname + (s.hasAttribute("data-include-query") ? l.search : ""); };
            var send = function (type, p, extra) {
              try {
                var e = { site_id: site, event_type: String(type), path: p || path() }, k;
                for (k in extra) e[k] = extra[k];
                var body = JSON.stringify(e), n = w.navigator;
                if (!(n.sendBeacon && n.sendBeacon(api, body)) && w.fetch) {
                  w.fetch(api, { method: "POST", body: body, keepalive: true }).catch(noop);
                }
              } catch (x) {}
            };
            var last, first = true;
            var view = function () {
              var p = path(), extra = {};
              if (p === last) return;
              last = p;
              if (first && d.referrer) extra.referrer = d.referrer;
              first = false;
              var q = new URLSearchParams(l.search);
              ["utm_source", "utm_medium", "utm_campaign"].forEach(function (k) { if (q.get(k)) extra[k] = q.get(k); });
              send("page_view", p, extra);
            };
            ["pushState", "replaceState"].forEach(function (m) {
              var original = w.history[m];
              w.history[m] = function () {
                var r = original.apply(this, arguments);
                view();
                return r;
              };
            });
            w.addEventListener("popstate", view);
            w.tally = function (type, o) { send(type, o && o.path); };
            queued.forEach(function (args) { w.tally.apply(null, args); });
            view();
          } catch (x) { w.tally = w.tally || noop; }
        })(window, document);

        """#
}
