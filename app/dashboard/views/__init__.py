"""The dashboard pages: scripts that ``st.navigation`` runs (no SQL, no business logic)."""
