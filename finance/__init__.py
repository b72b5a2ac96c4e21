"""Finance: gateway bills and their reconciliation, settlement, back-office dashboards, exports and metrics."""
