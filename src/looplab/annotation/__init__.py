"""Step 3 of the loop, people's side: users and roles, score configs, annotation queues with
leases, labels and agreement between annotators."""
