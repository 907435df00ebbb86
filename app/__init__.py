"""The application edge: the ``aigw`` command line (``cli`` and its ``*_cli`` modules:
parse, call, print), the Streamlit dashboards (``dashboard/``), the settings built once
from flags, environment and files (``settings``), and the service layer that composes the
stages (``service/``)."""

import polars as pl

# Every command and page computes on frames already in memory: Polars' in-memory engine
# runs those queries faster than its streaming engine (the default since Polars 2; the
# what-ifs on 10 M requests 10-30% faster, the rollups' pricing 4x), and gives the same
# bits from run to run (the streaming engine's float sums depend on where its pieces end).
pl.Config.set_engine_affinity("in-memory")
