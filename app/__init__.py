"""The ``aigw`` command line (and, later, the Streamlit dashboards)."""
