"""Docker-less local development for Martech Bridge: the template reader, moto-backed AWS, the HTTP API
gateway, the queue pollers, the provider sandbox, one-shot invoke and the build checks."""
