"""Build the Cython core (sipmask._core).

`pip install .` / `pip install -e .` cythonize `sipmask/_core.pyx` (Cython is a build
requirement in pyproject.toml). Set SIPMASK_CYTHON_ANNOTATE=1 to write the annotated HTML
next to the source, and SIPMASK_DEBUG=1 to build without optimisation.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

debug = os.environ.get("SIPMASK_DEBUG") == "1"
extra_compile_args = ["-O0", "-g"] if debug else ["-O2"]

extensions = [
    Extension(
        "sipmask._core",
        ["sipmask/_core.pyx"],
        extra_compile_args=extra_compile_args,
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        annotate=os.environ.get("SIPMASK_CYTHON_ANNOTATE") == "1",
        compiler_directives={
            "language_level": "3",
            "cdivision": True,
            "initializedcheck": False,
        },
    )
)
