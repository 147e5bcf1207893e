"""The herald web viewer program: a bottle app on waitress, its views (records, systems,
alerts, API, health), access control (login, sessions, CSRF), templates and static files."""
