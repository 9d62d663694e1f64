"""The bento's runtime: real modules, linted and tested here, copied into every bento.

They import only what a bento ships, never nb2prod itself, and what varies per bento (its
name, version and log size) comes from the generated ``service.py`` or ``nb2prod.json``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# where each runtime module goes in the bento's src/ -> its file here
FILES = {
    "nb2prod_validation.py": "validation.py",
    "nb2prod_fastpath.py": "fastpath.py",
    "nb2prod_batching.py": "batching.py",
    "nb2prod_contract.py": "contract.py",
    "nb2prod_runtime.py": "runtime.py",
    "nb2prod_compiled.py": "compiled.py",
    "nb2prod_limits.py": "limits.py",
    "nb2prod_keys.py": "keys.py",
    "nb2prod_auth.py": "auth.py",
    "nb2prod_sink.py": "sink.py",
    "nb2prod_explain.py": "explain.py",
    "tests/conftest.py": "conftest.py",
}


def sources() -> dict[str, str]:
    """The runtime modules' text, by their path in the bento's ``src/``."""
    return {target: (HERE / name).read_text(encoding="utf-8") for target, name in FILES.items()}
