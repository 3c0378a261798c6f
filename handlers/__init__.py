"""The seed systems' task handlers and the local services they stand on.

``handlers.services`` holds the external services (DynamoDB, SNS, payments, video) as local
implementations over SQLAlchemy; ``handlers.marketplace`` and ``handlers.ccs`` are the Lambda
functions of those systems' workflows; ``handlers.hourbank`` is HourBank's.
"""
