"""Dramatiq side: broker setup, the line-running actor, provider adapters."""
