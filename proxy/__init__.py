"""The companion AI gateway. Not built yet: see the gateway issue."""
