"""Rules of the bridge, pure where they can be: no boto3, no HTTP, no os.environ."""
