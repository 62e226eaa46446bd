"""Internal. Schedules and their slots (the times each is due) in the store
(``stored_schedules``), the ``labloom serve`` daemon, and failure alerts."""
