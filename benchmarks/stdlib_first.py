"""Import first in every benchmark script: `benchmarks/math.py` (the name issue #13 gives the multiple-choice
benchmark) shares its name with the standard library's `math`, and `python benchmarks/X.py` puts this folder
first on sys.path, where it would shadow the real one for numpy, pandas and `random`. This moves the folder
behind the standard library; `common` and the other scripts still import from here."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if sys.path and os.path.abspath(sys.path[0] or os.curdir) == HERE:
    sys.path.append(sys.path.pop(0))
