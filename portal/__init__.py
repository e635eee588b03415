"""The public portal (门户): server-rendered Chinese pages over the catalog, 纠错 and 数据需求,
and the usage cockpit; the developer center (/console) and a person's consents (/me/…) on
the web session of `portal/session.py` with the CSRF tokens of `portal/csrf.py`. Templates
in `portal/templates`, assets in `portal/static` (served by the gateway under
`/static/portal/`, nothing from another host)."""
