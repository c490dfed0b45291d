"""Schedules: a cron expression in a time zone that creates a batch at each run (DESIGN.md: Schedule).

``cron`` reads expressions and finds the next run time in the schedule's zone, ``manage`` serves the API
(create, read, list, update, delete, the wire conversion), ``runner`` fires due schedules from the planner tick:
one batch per run across every planner and restart, and one on recovery however many runs were missed.
``sources`` checks and reads an ``input_url``: a URL downloaded, or a folder whose newest file is copied, at each run.
"""
