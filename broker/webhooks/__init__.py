"""Result delivery by webhook: events into an SQL outbox, Standard Webhooks signing, delivery, SSRF guard.

``events`` enqueues, ``outbox`` claims and records in SQL, ``delivery`` sends (the planner process's thread),
``signing`` signs, ``ssrf`` decides which URLs may be called, ``endpoints`` serves the API's registrations.
"""
