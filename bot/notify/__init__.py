"""What users see while and after a job runs: status messages, delivery, recovery after a restart."""
