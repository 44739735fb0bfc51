"""The management service: tickets (lifecycle, SLA, history), users and roles, service status.

The runnable ``Service`` is ``backend_services.management.service:service`` (see
``backend_services/registry.py``); docs in ``docs/management.md``.
"""
