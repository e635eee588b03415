"""The installation's key ring: every key the hosts of one installation must agree on
(token signing, pseudonyms, identity HMAC, audit signing, audit digests, cursors), stored in
the database and sealed with AES-256-GCM under a master key (contract §9,
docs/contract-keyring.md).

At the bottom of the package graph next to `catalog`: it takes a session and plain
arguments, and never imports `gateway` or another domain package.
"""
