"""Apache Airflow provider for the Rivya Public API v1."""

__version__ = "0.1.0"
