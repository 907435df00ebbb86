"""FinOps models over the warehouse (pricing, attribution, cache, anomalies, forecast).

Not built yet: see the models issue. Nothing here is used by ingest.
"""
