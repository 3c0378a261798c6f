"""Local AWS services answering Task states: DynamoDB, SNS, SQS, S3, EventBridge, Lambda."""
