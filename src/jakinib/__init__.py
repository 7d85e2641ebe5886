"""jakinib: the open, cited reference system for Janus kinase (JAK) inhibitors.

>>> import jakinib
>>> kb = jakinib.load()
>>> kb.drug("Rinvoq").name
'upadacitinib'
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from jakinib.errors import InputError, JakinibError, KnowledgeError

if TYPE_CHECKING:
    from jakinib.knowledge import KnowledgeBase

__version__ = "0.1.0"


@lru_cache(maxsize=4)
def load(data_dir: Path | None = None) -> KnowledgeBase:
    """The bundled (or given) knowledge base, validated; cached per folder."""
    from jakinib.knowledge import base, loader

    return base.build(Path(data_dir) if data_dir else loader.DATA_DIR)


__all__ = ["InputError", "JakinibError", "KnowledgeError", "__version__", "load"]
