"""The application edge: the ``aigw`` command line (``cli`` and its ``*_cli`` modules:
parse, call, print), the Streamlit dashboards (``dashboard/``), the settings built once
from flags, environment and files (``settings``), and the service layer that composes the
stages (``service/``)."""
