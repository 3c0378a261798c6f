"""SAM, CloudFormation and CDK templates: their state machines, functions and resources, run locally."""
