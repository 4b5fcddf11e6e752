"""One module per ``bayesgmm`` subcommand, each with ``run(args, progress) -> exit status``.

A command reads its data (:mod:`bayesgmm.cli.data`), calls the library and writes what the
library returns; it holds no maths and no file format of its own. Heavy libraries (NumPy,
pandas, PyMC) load inside ``run``.
"""
