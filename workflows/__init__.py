"""The seed systems' state machines (ASL files beside the code) and what starts them.

``workflows.registry`` is the table of every workflow; ``workflows.api`` starts, inspects and
stops them as the seeds' GraphQL operations do.
"""
