import sys

from steerlib.cli import main

sys.exit(main())
