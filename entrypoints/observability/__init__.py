"""Operators' view of the service: metrics, readiness checks, request ids and log format."""
