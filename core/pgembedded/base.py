"""Django's PostgreSQL backend (with django-prometheus's query metrics), pointed at the embedded
server (started on first connection)."""

from pathlib import Path

from django_prometheus.db.backends.postgresql import base

from core.embedded_pg import ensure_database, ensure_server


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self):
        server = ensure_server(Path(self.settings_dict["OPTIONS_EMBEDDED_DIR"]))
        params = super().get_connection_params()
        params["host"] = server.socket_dir
        params["port"] = server.port
        params["user"] = "postgres"
        if params.get("dbname") and params["dbname"] != "postgres":
            ensure_database(server, params["dbname"])
        return params
