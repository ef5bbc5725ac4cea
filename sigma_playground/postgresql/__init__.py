"""Django's PostgreSQL backend with the database circuit breaker (sigma_playground.db_breaker)."""
