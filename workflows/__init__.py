"""The seed systems' state machines (ASL files beside the code) and what starts them.

``workflows.registry`` is the table of every workflow (marketplace, CCS and HourBank);
``workflows.settings`` fills the ``*_STATE_MACHINE_ARN`` placeholders of the definitions;
``workflows.api`` starts, inspects and stops them as the seeds' GraphQL operations do;
``workflows.triggers`` and ``workflows.routing`` put the seeds' event rules and schedules on the
buses; ``workflows.console`` lets a person drive them step by step (``statelang workflows``);
``workflows.demo`` tells their stories (``statelang demo``).
"""
