"""Monitoring: metrics over time computed in SQL (``metrics``) and the traces that need attention
(``attention``). The Monitoring page and the CLI call these services; they never build SQL."""
