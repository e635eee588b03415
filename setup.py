"""The one thing pyproject.toml cannot say: the optional C extension of policies/.

`policies._pseudonym` computes the pseudonyms and string masks of a whole column natively (see
docs/decisions/0007-native-pseudonyms.md). It is optional: where it does not compile (no C
compiler, no Python headers) the install still succeeds and policies.transforms uses its
pure-Python code, which gives the same output.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "policies._pseudonym",
            ["policies/_pseudonym.c"],
            optional=True,
        )
    ]
)
