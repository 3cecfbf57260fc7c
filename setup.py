"""The one compiled part: :mod:`rtpkit._srtpsend` (the SFU's per-packet send, in C).

Everything else is in pyproject.toml. The extension is optional: where it cannot be built
(no C compiler or Python headers), the install goes on and :mod:`rtpkit.outlet` sends through
its pure-Python path, which does the same.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rtpkit._srtpsend",
            ["rtpkit/_srtpsend.c"],
            optional=True,
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
        )
    ]
)
