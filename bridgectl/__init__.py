"""Operator command line for Martech Bridge (python -m bridgectl, or the martech-bridge console script):
works against a deployed stack (by CloudFormation stack name) and against the local stack."""
