"""The ``broker`` command and the wiring of processes (the composition root above api/ and workers/)."""
