"""Local implementations of the external services the seed systems call: DynamoDB, SNS, a payment
provider and a video recorder, each behaving like the real one and keeping its state in SQL."""

from .registry import Services, create_tables, domain_engine, service_handlers

__all__ = ["Services", "service_handlers", "domain_engine", "create_tables"]
