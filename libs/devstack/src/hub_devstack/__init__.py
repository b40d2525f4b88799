"""Real infrastructure for tests and `make up`: Kafka and PostgreSQL from the environment, Docker or local
processes, and the launcher that runs the whole Hub as subprocesses."""
