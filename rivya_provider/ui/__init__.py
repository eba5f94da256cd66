"""The Rivya view inside the Airflow UI (Airflow 3.1+): an api-server plugin, imported lazily."""
