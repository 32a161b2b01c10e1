"""Sessions and their processes: states, limits, queue, TTLs, start order, pipes and terminals."""
