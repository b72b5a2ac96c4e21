"""One ``requests.Session`` per gateway adapter and process: connections to the gateway are reused.

``requests.post`` without a session (what ``wechatpayv3`` does) and ``urllib.request.urlopen`` (what
``python-alipay-sdk`` does) open a new TCP (and TLS) connection for every call and read the proxy
environment (``*_PROXY``, ``NO_PROXY``, ``~/.netrc``) again each time. A gateway adapter lives for the
process (``payments.gateways.registry``), so it keeps one pooled session instead:

- built on first use in the process that uses it, and built again after a fork (a socket shared by a
  gunicorn or Celery parent and its children would interleave their bytes);
- the proxy and CA bundle settings of the environment are read once, when the session is built, for the
  gateway's base URL (as ``requests`` would resolve them per call);
- no cookies kept: gateway APIs are stateless, and one caller's cookie must never ride on another's call;
- timeouts stay per call (the caller passes them; a session has none of its own).

``urllib3``'s pool is thread-safe; ``pool_maxsize`` keeps up to that many idle connections per host (a
gthread worker's threads each hold one while they wait for an answer).
"""

from __future__ import annotations

import os
import threading
from http.cookiejar import DefaultCookiePolicy

import requests
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

POOL_MAXSIZE = 16  # idle connections kept per gateway host; more concurrent calls still work (not kept)


def new_session(base_url: str) -> requests.Session:
    """A session for calls to ``base_url``: pooled, cookie-less, environment read once (see module doc)."""
    session = requests.Session()
    session.trust_env = False  # the environment is read here, once, not at every call
    session.proxies.update(get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))  # accept none
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=POOL_MAXSIZE)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class ProcessSession:
    """``get()`` returns this process's session for ``base_url``, built on first use and after a fork."""

    def __init__(self, base_url: str, *, session: requests.Session | None = None) -> None:
        self.base_url = base_url
        self._lock = threading.Lock()
        self._session = session  # given (tests): used as is, in this process only
        self._pid = os.getpid() if session is not None else None

    def get(self) -> requests.Session:
        pid = os.getpid()
        session = self._session
        if session is not None and self._pid == pid:
            return session
        with self._lock:
            if self._session is None or self._pid != pid:
                self._session = new_session(self.base_url)  # a parent's session is dropped, never closed here
                self._pid = pid
            return self._session
