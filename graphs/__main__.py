"""``python -m graphs``: the command line (``graphs.cli``).

Start-up makes some 50,000 objects that live as long as the process (networkx, pydantic,
Jinja, the node types' modules), and the garbage collector would walk them all several
times while they are made, then once more as the interpreter exits, to find almost
nothing: about a tenth of a model-free ``run``'s instructions (issue 18: the command line
starts in under 0.4 s). So the collector is off while the command line loads, and what
loading made is frozen (``gc.freeze``) out of every later pass, the exit's included, as
the server does with its own start-up (``webapp/gcfreeze.py``). It is on again before the
command starts: a long run's garbage is collected as ever.
"""

import gc
import sys

gc.disable()

from graphs.cli import main  # noqa: E402 - after the collector is off, which is the point

gc.freeze()
gc.enable()

sys.exit(main())
