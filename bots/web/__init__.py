"""The web channel: REST webhook, WebSocket, sessions, limits, the widget's files."""
