"""What users and admins can do, independent of how they asked: admit a request, cancel, pause, prefer."""
