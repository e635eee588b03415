"""Interface services (接口服务, contract §12): service packages, response paths, the circuit
breaker and signed calls. A domain package: it never imports `gateway`."""
