import sys

from multirater.cli import main

sys.exit(main())
