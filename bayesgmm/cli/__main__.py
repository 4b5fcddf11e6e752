"""``python -m bayesgmm.cli``: the ``bayesgmm`` command."""

import sys

from bayesgmm.cli.main import main

sys.exit(main())
