"""Internal. Schedules and their slots in the store, the ``labloom serve`` daemon, and failure
alerts."""
