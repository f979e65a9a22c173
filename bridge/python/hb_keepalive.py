"""A crawl's plain GETs over one raw HTTP/1.1 keep-alive connection (http.client), answering the
way cloud-init's readurl does: a crawl is 15 requests per NIC, and requests + urllib3 spend ~0.6 ms
of CPU on each even on a shared session (URL parsing, adapters, hooks), ~6x what the exchange itself
costs; in a 16-NIC storm that was most of the bridge's crawl. Only a 200 is answered here, as a
real url_helper.UrlResponse; anything else (another status, a redirect, an error, a timeout, a
proxy in the environment, https) goes to cloud-init's readurl itself, so retries, the stale-token
callback and the errors callers see are cloud-init's own.
"""

import http.client
import socket
import urllib.parse

# The readurl arguments a plain GET may carry (anything else, e.g. data or a request method, is
# cloud-init's business) and the values that keep it plain.
_PLAIN = {"data": None, "check_status": True, "allow_redirects": True, "session": None, "infinite": False, "request_method": "", "stream": False}
_PASSED = {"timeout", "retries", "sec_between", "headers", "headers_cb", "headers_redact", "ssl_details", "exception_cb", "log_req_resp"}


class Connection:
    """One crawl's connection: opened on first use, reopened once if the server closed an idle
    one, never used again in this crawl after a failure (so a hung service costs one timeout
    here at most, counted as one of readurl's tries)."""

    def __init__(self):
        self._conn = None
        self._key = None
        self.broken = False
        self.served = 0

    def close(self):
        if self._conn is not None:
            self._conn.close()
        self._conn = None

    def _connection(self, host, port, timeout):
        if self._conn is None or self._key != (host, port):
            self.close()
            self._conn = http.client.HTTPConnection(host, port, timeout=timeout)
            self._key = (host, port)
        elif self._conn.sock is not None:
            self._conn.sock.settimeout(timeout)
        self._conn.timeout = timeout
        return self._conn

    def get(self, host, port, target, headers, timeout):
        """(status, reason, headers, body) of one GET; reuses the connection, and retries once on a
        fresh one when a reused connection turns out closed (a keep-alive timeout on the server)."""
        for attempt in (0, 1):
            reused = self._conn is not None and self._key == (host, port)
            conn = self._connection(host, port, timeout)
            try:
                conn.request("GET", target, headers=headers)
                r = conn.getresponse()
                body = r.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if reused and attempt == 0:
                    continue
                raise e
            except BaseException:
                self.close()
                raise
            if r.will_close:
                self.close()
            return r.status, r.reason, r.getheaders(), body
        raise http.client.HTTPException("unreachable")


def plain_get_target(url, args, kwargs):
    """(host, port, target) when readurl(url, **kwargs) is a GET this module may serve, else None."""
    if len(args) != 1 or not isinstance(url, str):
        return None
    for k, v in kwargs.items():
        if k in _PLAIN:
            if v != _PLAIN[k] and not (k == "request_method" and v in (None, "GET")):
                return None
        elif k not in _PASSED:
            return None
    t = kwargs.get("timeout")
    if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float))):
        return None  # a (connect, read) tuple: cloud-init's
    try:
        u = urllib.parse.urlsplit(url)
        port = u.port or 80
    except ValueError:
        return None
    if u.scheme != "http" or not u.hostname or u.username is not None or u.password is not None or u.fragment:
        return None
    host = u.hostname if ":" not in u.hostname else "[%s]" % u.hostname
    return host, port, (u.path or "/") + ("?" + u.query if u.query else "")


def request_headers(url, kwargs):
    """The headers readurl would send: headers_cb(url) when given (it replaces everything, the
    datasource's IMDSv2 token included), else cloud-init's User-Agent updated by `headers`."""
    cb = kwargs.get("headers_cb")
    if cb:
        h = dict(cb(url) or {})
    else:
        from cloudinit import version

        h = {"User-Agent": "Cloud-Init/%s" % version.version_string()}
        h.update(kwargs.get("headers") or {})
    h.setdefault("Accept", "*/*")
    return h


def url_response(url, status, reason, headers, body):
    """cloud-init's UrlResponse around a requests.Response holding what the server sent."""
    import requests
    from requests.structures import CaseInsensitiveDict
    from cloudinit import url_helper

    r = requests.Response()
    r.status_code = status
    r.reason = reason
    r.headers = CaseInsensitiveDict(headers)
    r.url = url
    r._content = body
    r._content_consumed = True
    return url_helper.UrlResponse(r)


def readurl(conn, orig, url, args, kwargs):
    """Serve readurl(url, **kwargs) over `conn` if it is a plain GET answered 200, else hand it to
    cloud-init's `orig` (after a timeout here, with one try fewer: ours was one)."""
    target = None if conn.broken else plain_get_target(url, args, kwargs)
    if target is None:
        return orig(*args, **kwargs)
    from cloudinit import url_helper

    timeout = kwargs.get("timeout")
    try:
        status, reason, headers, body = conn.get(*target, request_headers(url, kwargs), max(float(timeout), 0.001) if timeout is not None else None)
    except socket.timeout:
        conn.broken = True
        retries = kwargs.get("retries")
        if isinstance(retries, int) and not isinstance(retries, bool) and retries > 0:
            kwargs = dict(kwargs, retries=retries - 1)
        return orig(*args, **kwargs)
    except (OSError, http.client.HTTPException, ValueError):
        conn.broken = True
        return orig(*args, **kwargs)
    if status != 200:
        return orig(*args, **kwargs)
    conn.served += 1
    url_helper.LOG.debug("Read from %s (%s, %sb) after %s attempts", url, status, len(body), 1)
    return url_response(url, status, reason, headers, body)
