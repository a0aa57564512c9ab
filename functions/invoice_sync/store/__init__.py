"""AWS access: DynamoDB, S3, SQS, SNS and Secrets Manager. The only code that touches boto3.

Every store takes its boto3 client as an optional argument, so tests pass moto's or a fake, and
builds the real one (once per process, see ``aws``) only when none is given.
"""
