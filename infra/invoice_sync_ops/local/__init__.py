"""The local stack: moto's server as AWS, the QuickBooks sandbox, API Gateway and the SQS event source."""
