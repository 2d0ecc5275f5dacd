"""The stream server: routes, admission, sessions, recording, handlers, settings."""
