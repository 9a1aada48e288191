import sys

from graphs.cli import main

sys.exit(main())
