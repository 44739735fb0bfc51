"""The contract and the bus: envelopes, subjects, streams, the NATS connection, embedded server.

This package imports nothing else of Frontdoor's; everything that touches nats-py lives here.
"""
