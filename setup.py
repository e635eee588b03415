"""The one thing pyproject.toml cannot say: the optional C extensions.

`policies._pseudonym` computes the pseudonyms and string masks of a whole column natively (see
docs/decisions/0007-native-pseudonyms.md); `audit._chain` walks the audit chain over
PostgreSQL's COPY lines natively (docs/decisions/0008-native-chain-verifier.md). Both share
one SHA-256 (native/sha256.h). They are optional: where they do not compile (no C compiler,
no Python headers) the install still succeeds and the pure-Python code runs instead, with the
same results.
"""

from setuptools import Extension, setup

SHA256 = ["native/sha256.h"]

setup(
    ext_modules=[
        Extension(
            "policies._pseudonym",
            ["policies/_pseudonym.c"],
            depends=SHA256,
            optional=True,
        ),
        Extension(
            "audit._chain",
            ["audit/_chain.c"],
            depends=SHA256,
            optional=True,
        ),
    ]
)
