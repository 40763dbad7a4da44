"""``python -m coursebuild``: see ``coursebuild.pipeline.main``."""

import sys

from coursebuild.pipeline import main

sys.exit(main())
