"""SAM, CloudFormation and CDK templates: their state machines, functions and resources, run locally."""


def is_template(doc: object) -> bool:
    """A CloudFormation/SAM template (has Resources), not a state machine definition (has States).
    Here, apart from `template`, so that telling the two apart imports nothing else."""
    return isinstance(doc, dict) and isinstance(doc.get("Resources"), dict) and "States" not in doc
