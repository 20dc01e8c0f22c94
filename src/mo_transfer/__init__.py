"""mo_transfer: the thin helper package of the executable reproduction of Fang et al. (Materials 2026, 19, 1715).

All logic of the book lives here (and is tested); the notebooks narrate and call it.
"""

__version__ = "0.1.0"
