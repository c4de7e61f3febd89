"""tomeflow: paper summary pages to analyst-ready PostgreSQL tables, orchestrated by Prefect."""

__version__ = "0.1.0"
