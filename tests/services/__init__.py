"""Tests of the backend services."""
